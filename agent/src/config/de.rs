//! The parsed file into the sections' types: one small serde `Deserializer` over the TOML
//! parser's own tree (`toml::de::DeValue`, which keeps spans), instead of toml's serde
//! deserializer. Each section's `Deserialize` is instantiated once against this one small
//! `deserialize_any` (toml's is several KiB per type on armv7, ~55 KiB for the file's
//! sections), and a refusal knows the dotted key it is about and where it stands.

use std::fmt;
use std::ops::Range;

use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

/// Why a value does not fit its type: the dotted key, where it stands, serde's reason.
#[derive(Debug)]
pub struct Refused {
    pub key: String,
    pub span: Option<Range<usize>>,
    pub message: String,
}

impl Refused {
    /// Names the key and the span, unless a deeper one already has.
    fn at(mut self, key: &str, span: &Range<usize>) -> Self {
        if self.span.is_none() {
            self.key = key.to_owned();
            self.span = Some(span.clone());
        }
        self
    }
}

impl de::Error for Refused {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self {
            key: String::new(),
            span: None,
            message: message.to_string(),
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refused {}

/// `table` as a `T`.
pub fn from_table<T: DeserializeOwned>(table: &DeTable<'_>) -> Result<T, Refused> {
    T::deserialize(Table { table, key: "" })
}

fn child(key: &str, name: &str) -> String {
    if key.is_empty() {
        name.to_owned()
    } else {
        format!("{key}.{name}")
    }
}

/// A table and the dotted key it stands at (`""` for the file).
struct Table<'a, 'i> {
    table: &'a DeTable<'i>,
    key: &'a str,
}

impl<'de> de::Deserializer<'de> for Table<'_, '_> {
    type Error = Refused;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        visitor.visit_map(Entries {
            entries: self.table.iter(),
            key: self.key,
            pending: None,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct Entries<'a, 'i, I> {
    entries: I,
    key: &'a str,
    /// The value of the key just handed out, and its dotted key.
    pending: Option<(&'a Spanned<DeValue<'i>>, String)>,
}

impl<'de, 'a, 'i: 'a, I> de::MapAccess<'de> for Entries<'a, 'i, I>
where
    I: Iterator<
        Item = (
            &'a Spanned<std::borrow::Cow<'i, str>>,
            &'a Spanned<DeValue<'i>>,
        ),
    >,
{
    type Error = Refused;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Refused> {
        let Some((name, value)) = self.entries.next() else {
            return Ok(None);
        };
        let key = child(self.key, name.get_ref());
        let found = seed
            .deserialize(StrDeserializer::<Refused>::new(name.get_ref()))
            .map_err(|e| e.at(&key, &name.span()))?;
        self.pending = Some((value, key));
        Ok(Some(found))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Refused> {
        let Some((value, key)) = self.pending.take() else {
            return Err(de::Error::custom("a value without its key"));
        };
        seed.deserialize(Value { value, key: &key })
            .map_err(|e| e.at(&key, &value.span()))
    }
}

/// One value and the dotted key it stands at.
struct Value<'a, 'i> {
    value: &'a Spanned<DeValue<'i>>,
    key: &'a str,
}

impl<'de> de::Deserializer<'de> for Value<'_, '_> {
    type Error = Refused;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.value.get_ref() {
            DeValue::String(text) => visitor.visit_str(text),
            DeValue::Integer(integer) => {
                match i64::from_str_radix(integer.as_str(), integer.radix()) {
                    Ok(n) => visitor.visit_i64(n),
                    Err(e) => Err(de::Error::custom(format!("integer {integer}: {e}"))),
                }
            }
            DeValue::Float(float) => match float.as_str().parse::<f64>() {
                Ok(x) => visitor.visit_f64(x),
                Err(e) => Err(de::Error::custom(format!("float {float}: {e}"))),
            },
            DeValue::Boolean(b) => visitor.visit_bool(*b),
            DeValue::Datetime(when) => visitor.visit_string(when.to_string()),
            DeValue::Array(array) => visitor.visit_seq(Items {
                items: array_items(array),
                key: self.key,
            }),
            DeValue::Table(table) => Table {
                table,
                key: self.key,
            }
            .deserialize_any(visitor),
        }
    }

    /// A key that is there is `Some`; one that is not is the section's default.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        visitor.visit_newtype_struct(self)
    }

    /// The configuration's enums are words (`drop_oldest`, `tcp`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refused> {
        match self.value.get_ref() {
            DeValue::String(text) => visitor.visit_enum(
                IntoDeserializer::<Refused>::into_deserializer(text.as_ref()),
            ),
            other => Err(de::Error::invalid_type(
                de::Unexpected::Other(other.type_str()),
                &"a word",
            )),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

fn array_items<'a, 'i>(array: &'a DeArray<'i>) -> std::slice::Iter<'a, Spanned<DeValue<'i>>> {
    array.iter()
}

struct Items<'a, 'i> {
    items: std::slice::Iter<'a, Spanned<DeValue<'i>>>,
    key: &'a str,
}

impl<'de> de::SeqAccess<'de> for Items<'_, '_> {
    type Error = Refused;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Refused> {
        match self.items.next() {
            None => Ok(None),
            Some(value) => seed
                .deserialize(Value {
                    value,
                    key: self.key,
                })
                .map(Some)
                .map_err(|e| e.at(self.key, &value.span())),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{AgentConfig, ConfigError};

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let err = AgentConfig::parse("[window]\nsize = 10\nhopp = 2\n", "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("hopp"), "{err}");
    }

    #[test]
    fn a_bad_value_is_named_with_its_line() {
        let err = AgentConfig::parse("[window]\nsize = \"big\"\n", "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("size"), "{err}");

        let err =
            AgentConfig::parse("[window]\nsize = 10\n\nhop = 20\n", "agent.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "agent.toml, line 4: `window.hop`: hop 20 must be between 1 and the window size 10"
        );

        let err = AgentConfig::parse("[sensor]\nsample_period_ms = 0\n", "agent.toml").unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key, line: Some(2), .. } if key == "sensor.sample_period_ms"),
            "{err}"
        );
    }

    #[test]
    fn what_the_file_says_is_escaped_and_what_a_header_cannot_carry_is_refused() {
        let (key, line, reason) = invalid("[agent]\nsensor_id = \"kitchen\\u202e1\"\n");
        assert_eq!((key.as_str(), line), ("agent.sensor_id", Some(2)));
        assert!(reason.contains("bidirectional"), "{reason}");

        let err = AgentConfig::parse("[window]\nsize = 1 \u{1b}[2J\n", "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\u{1b}') && err.contains("\\u{1b}"), "{err}");
        let err = AgentConfig::parse("[window]\n\"\\u001b[2J\" = 1\n", "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\u{1b}'), "{err}");

        let (key, _, reason) =
            invalid("[elasticsearch]\nurl = \"http://127.0.0.1:9200\"\napi_key = \"abc def\"\n");
        assert_eq!(key, "elasticsearch.api_key");
        assert!(reason.contains("printable ASCII"), "{reason}");

        let (key, _, _) = invalid("[function]\npath = \"/tmp/f\\u001b[2J.wasm\"\n");
        assert_eq!(key, "function.path");
    }

    fn invalid(text: &str) -> (String, Option<usize>, String) {
        match AgentConfig::parse(text, "agent.toml") {
            Err(ConfigError::Invalid {
                key, line, reason, ..
            }) => (key, line, reason),
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn keys_and_lines_come_from_the_parser_dotted_and_inline_too() {
        assert_eq!(
            invalid("[agent]\nsensor_id = \"k\"\nwindow.size = 0\n").0,
            "agent.window",
            "a dotted key inside [agent] is an unknown key there"
        );
        let (key, line, _) = invalid("\n\nwindow.size = 0\n");
        assert_eq!((key.as_str(), line), ("window.size", Some(3)));
        let (key, line, _) = invalid("window = { size = 10, hop = 20 }\n");
        assert_eq!((key.as_str(), line), ("window.hop", Some(1)));
        let (key, line, _) =
            invalid("[elasticsearch]\nurl = \"http://h:9200\"\n\nbatch_max_bytes = 0\n");
        assert_eq!(
            (key.as_str(), line),
            ("elasticsearch.batch_max_bytes", Some(4))
        );
        let (key, line, _) = invalid("[sensor.retry]\ninitial_backoff_ms = \"x\"\n");
        assert_eq!(
            (key.as_str(), line),
            ("sensor.retry.initial_backoff_ms", Some(2))
        );
        let (key, line, _) = invalid("[function]\nmax_memory_mib = 4096\n");
        assert_eq!((key.as_str(), line), ("function.max_memory_mib", Some(2)));
        let (key, line, _) = invalid("[window]\nsize = 1000000000000\n");
        assert_eq!((key.as_str(), line), ("window.size", Some(2)));
    }
}

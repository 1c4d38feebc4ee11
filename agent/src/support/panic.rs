//! A caught panic's message, for the log line that reports it.

use std::any::Any;

/// The text a panic was raised with, or a placeholder when it carried something else.
pub fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_payload_kinds_are_read() {
        let caught = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(super::message(caught.as_ref()), "plain");
        let n = 3;
        let caught = std::panic::catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(super::message(caught.as_ref()), "formatted 3");
    }
}

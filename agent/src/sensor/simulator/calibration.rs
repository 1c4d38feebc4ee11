//! Factory calibration of a simulated chip: two realistic sets from the reference (§4) and
//! their register image, laid out exactly where a real BME680 keeps them.

use crate::sensor::bme680::datasheet::HeaterCalibration;

/// The trimming parameters of one chip, in the datasheet's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calibration {
    pub t1: u16,
    pub t2: i16,
    pub t3: i8,
    pub p1: u16,
    pub p2: i16,
    pub p3: i8,
    pub p4: i16,
    pub p5: i16,
    pub p6: i8,
    pub p7: i8,
    pub p8: i16,
    pub p9: i16,
    pub p10: u8,
    /// 12 bits.
    pub h1: u16,
    /// 12 bits.
    pub h2: u16,
    pub h3: i8,
    pub h4: i8,
    pub h5: i8,
    pub h6: u8,
    pub h7: i8,
    pub gh1: i8,
    pub gh2: i16,
    pub gh3: i8,
    /// 2 bits.
    pub res_heat_range: u8,
    pub res_heat_val: i8,
    /// 0..=7 (bit 7 of register 0x04 clear, so signed and unsigned readers agree).
    pub range_sw_err: u8,
}

impl Calibration {
    /// Set A: the dump in Pimoroni's test fixture (reference §4).
    pub const PIMORONI: Calibration = Calibration {
        t1: 26041,
        t2: 26469,
        t3: 3,
        p1: 36673,
        p2: -10515,
        p3: 88,
        p4: 7310,
        p5: -129,
        p6: 30,
        p7: 46,
        p8: -3177,
        p9: -2379,
        p10: 30,
        h1: 676,
        h2: 1029,
        h3: 0,
        h4: 45,
        h5: 20,
        h6: 120,
        h7: -100,
        gh1: -30,
        gh2: -24754,
        gh3: 18,
        res_heat_range: 1,
        res_heat_val: 48,
        range_sw_err: 0,
    };

    /// Set B: a real device's dump (reference §4), range switching error set to 3.
    pub const DEVICE_B: Calibration = Calibration {
        t1: 26125,
        t2: 26370,
        t3: 3,
        p1: 36262,
        p2: -10371,
        p3: 88,
        p4: 6713,
        p5: -103,
        p6: 30,
        p7: 31,
        p8: -251,
        p9: -3158,
        p10: 30,
        h1: 776,
        h2: 1010,
        h3: 0,
        h4: 45,
        h5: 20,
        h6: 120,
        h7: -100,
        gh1: -73,
        gh2: -6255,
        gh3: 18,
        res_heat_range: 1,
        res_heat_val: 39,
        range_sw_err: 3,
    };

    /// Writes the calibration into a 256-byte register file.
    pub fn write_registers(&self, registers: &mut [u8; 256]) {
        let mut put16 = |lsb: usize, value: u16| {
            let [low, high] = value.to_le_bytes();
            registers[lsb] = low;
            registers[lsb + 1] = high;
        };
        put16(0xE9, self.t1);
        put16(0x8A, self.t2 as u16);
        put16(0x8E, self.p1);
        put16(0x90, self.p2 as u16);
        put16(0x94, self.p4 as u16);
        put16(0x96, self.p5 as u16);
        put16(0x9C, self.p8 as u16);
        put16(0x9E, self.p9 as u16);
        put16(0xEB, self.gh2 as u16);
        registers[0x8C] = self.t3 as u8;
        registers[0x92] = self.p3 as u8;
        registers[0x98] = self.p7 as u8;
        registers[0x99] = self.p6 as u8;
        registers[0xA0] = self.p10;
        registers[0xE1] = (self.h2 >> 4) as u8;
        registers[0xE2] = (((self.h2 & 0x0F) << 4) | (self.h1 & 0x0F)) as u8;
        registers[0xE3] = (self.h1 >> 4) as u8;
        registers[0xE4] = self.h3 as u8;
        registers[0xE5] = self.h4 as u8;
        registers[0xE6] = self.h5 as u8;
        registers[0xE7] = self.h6;
        registers[0xE8] = self.h7 as u8;
        registers[0xED] = self.gh1 as u8;
        registers[0xEE] = self.gh3 as u8;
        registers[0x00] = self.res_heat_val as u8;
        registers[0x02] = (self.res_heat_range & 0x03) << 4;
        registers[0x04] = (self.range_sw_err & 0x07) << 4;
    }

    pub fn heater(&self) -> HeaterCalibration {
        HeaterCalibration {
            par_gh1: self.gh1,
            par_gh2: self.gh2,
            par_gh3: self.gh3,
            res_heat_range: self.res_heat_range,
            res_heat_val: self.res_heat_val,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_a_register_image_matches_the_reference_dump() {
        let mut registers = [0u8; 256];
        Calibration::PIMORONI.write_registers(&mut registers);
        let block1: [u8; 23] = [
            0x65, 0x67, 0x03, 0x00, 0x41, 0x8F, 0xED, 0xD6, 0x58, 0x00, 0x8E, 0x1C, 0x7F, 0xFF,
            0x2E, 0x1E, 0x00, 0x00, 0x97, 0xF3, 0xB5, 0xF6, 0x1E,
        ];
        let block2: [u8; 14] = [
            0x40, 0x54, 0x2A, 0x00, 0x2D, 0x14, 0x78, 0x9C, 0xB9, 0x65, 0x4E, 0x9F, 0xE2, 0x12,
        ];
        assert_eq!(registers[0x8A..=0xA0], block1);
        assert_eq!(registers[0xE1..=0xEE], block2);
        assert_eq!(
            [registers[0x00], registers[0x02], registers[0x04]],
            [0x30, 0x10, 0x00]
        );
    }
}

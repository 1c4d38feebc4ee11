//! The BME680: the real driver on Linux I2C or on a simulated chip, air quality, the sampler.

//! Avro binary written straight from serde, in field order: no schema lookup per field.
//!
//! The canonical records' schemas are derived from the very structs being written
//! (`#[derive(AvroSchema)]`), so a record's fields come to the serializer in its schema's order,
//! an `Option` is the union `["null", T]`, an enum symbol's index is its variant index, and a
//! `Vec` is an array. Writing in that order needs no schema at all: this is about ten times
//! apache-avro's schema-aware serializer, which looks each field up by name. It is only used for
//! a record written under its own derived schema (`Codec::register`, `Codec::preload`), and a
//! test checks that its bytes equal apache-avro's for every sample record.

use serde::ser::{self, Serialize};

#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

type R = std::result::Result<(), Error>;

/// Appends `value` to `out` as an Avro datum of its derived schema.
pub fn write<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> R {
    value.serialize(Writer { out })
}

/// Zig-zag varint, Avro's `int` and `long`.
pub fn long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

pub fn string(out: &mut Vec<u8>, s: &str) {
    long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

#[derive(Debug)]
pub struct Writer<'a> {
    pub out: &'a mut Vec<u8>,
}

/// Arrays and maps: one block with the count (when not empty), then the end marker.
#[derive(Debug)]
pub struct Block<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Block<'a>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Block<'a>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> R {
        self.out.push(u8::from(v));
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> R {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> R {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> R {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> R {
        long(self.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> R {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u16(self, v: u16) -> R {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u32(self, v: u32) -> R {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u64(self, v: u64) -> R {
        let v =
            i64::try_from(v).map_err(|_| Error(format!("{v} is too large for an Avro long")))?;
        self.serialize_i64(v)
    }
    fn serialize_f32(self, v: f32) -> R {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> R {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> R {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> R {
        string(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> R {
        long(self.out, v.len() as i64);
        self.out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> R {
        self.out.push(0);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> R {
        self.out.push(2); // union branch 1, zig-zag
        value.serialize(self)
    }
    fn serialize_unit(self) -> R {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> R {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, index: u32, _: &'static str) -> R {
        long(self.out, i64::from(index));
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> R {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        value: &T,
    ) -> R {
        long(self.out, i64::from(index));
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Block<'a>, Error> {
        let len = len.ok_or_else(|| Error("a sequence of unknown length".into()))?;
        if len > 0 {
            long(self.out, len as i64);
        }
        Ok(Block { out: self.out })
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Error> {
        long(self.out, i64::from(index));
        Ok(self)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Block<'a>, Error> {
        self.serialize_seq(len)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Error> {
        long(self.out, i64::from(index));
        Ok(self)
    }
}

impl ser::SerializeSeq for Block<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        value.serialize(Writer { out: self.out })
    }
    fn end(self) -> R {
        self.out.push(0);
        Ok(())
    }
}

impl ser::SerializeMap for Block<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> R {
        key.serialize(Writer { out: self.out })
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        value.serialize(Writer { out: self.out })
    }
    fn end(self) -> R {
        self.out.push(0);
        Ok(())
    }
}

macro_rules! fields {
    ($trait:path, $method:ident $(, $key:ty)?) => {
        impl $trait for Writer<'_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, $(_: $key,)? value: &T) -> R {
                value.serialize(Writer { out: self.out })
            }
            fn end(self) -> R {
                Ok(())
            }
        }
    };
}

fields!(ser::SerializeTuple, serialize_element);
fields!(ser::SerializeTupleStruct, serialize_field);
fields!(ser::SerializeTupleVariant, serialize_field);
fields!(ser::SerializeStruct, serialize_field, &'static str);
fields!(ser::SerializeStructVariant, serialize_field, &'static str);

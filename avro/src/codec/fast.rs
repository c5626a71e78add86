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

/// Reads an Avro datum written under `T`'s own derived schema (the reader checks that the
/// writer's schema is that one before taking this path), returning the value and the bytes
/// left over. Strings are read in place; lengths and counts are checked against the input, so
/// a corrupt length fails instead of allocating.
pub fn read<'de, T: serde::Deserialize<'de>>(input: &'de [u8]) -> Result<(T, &'de [u8]), Error> {
    let mut r = Reader { input };
    let value = T::deserialize(&mut r)?;
    Ok((value, r.input))
}

/// Most items in one array or map block: far above any record's, far below a corrupt count.
const MAX_BLOCK: i64 = 1_000_000;

struct Reader<'de> {
    input: &'de [u8],
}

impl<'de> Reader<'de> {
    fn long(&mut self) -> Result<i64, Error> {
        let mut z: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .input
                .split_first()
                .ok_or_else(|| Error("the record ends inside a number".into()))?;
            self.input = rest;
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(Error("a number longer than 10 bytes".into()))
    }

    fn take(&mut self, n: usize) -> Result<&'de [u8], Error> {
        if n > self.input.len() {
            return Err(Error(format!(
                "a length of {n} bytes runs past the end of the record ({} left)",
                self.input.len()
            )));
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(head)
    }

    fn len(&mut self) -> Result<usize, Error> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| Error(format!("a negative length ({n})")))
    }

    fn str(&mut self) -> Result<&'de str, Error> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).map_err(|e| Error(format!("text is not UTF-8: {e}")))
    }

    /// The count of the next block of an array or map (0 at the end).
    fn block(&mut self) -> Result<usize, Error> {
        let mut n = self.long()?;
        if n < 0 {
            n = n
                .checked_neg()
                .ok_or_else(|| Error("a corrupt block count".into()))?;
            let _bytes = self.long()?;
        }
        if n > MAX_BLOCK || n as usize > self.input.len() {
            return Err(Error(format!(
                "a block of {n} items cannot fit in the {} bytes left",
                self.input.len()
            )));
        }
        Ok(n as usize)
    }
}

impl serde::de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

macro_rules! read_int {
    ($($method:ident => $visit:ident($ty:ty)),* $(,)?) => {
        $(fn $method<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let n = self.long()?;
            visitor.$visit(<$ty>::try_from(n).map_err(|_| Error(format!("{n} is out of range")))?)
        })*
    };
}

impl<'de> serde::Deserializer<'de> for &mut Reader<'de> {
    type Error = Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error(
            "the field-order reader needs the record's type".into(),
        ))
    }

    read_int!(
        deserialize_i8 => visit_i8(i8), deserialize_i16 => visit_i16(i16),
        deserialize_i32 => visit_i32(i32), deserialize_i64 => visit_i64(i64),
        deserialize_u8 => visit_u8(u8), deserialize_u16 => visit_u16(u16),
        deserialize_u32 => visit_u32(u32), deserialize_u64 => visit_u64(u64),
    );

    fn deserialize_bool<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.take(1)? {
            [0] => visitor.visit_bool(false),
            [1] => visitor.visit_bool(true),
            other => Err(Error(format!("{other:?} is not a boolean"))),
        }
    }
    fn deserialize_f32<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let b = self.take(4)?;
        visitor.visit_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn deserialize_f64<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        visitor.visit_f64(f64::from_le_bytes(a))
    }
    fn deserialize_char<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }
    fn deserialize_str<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.str()?)
    }
    fn deserialize_string<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }
    fn deserialize_bytes<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let n = self.len()?;
        visitor.visit_borrowed_bytes(self.take(n)?)
    }
    fn deserialize_byte_buf<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }
    fn deserialize_option<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.long()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            n => Err(Error(format!("union branch {n} of an optional value"))),
        }
    }
    fn deserialize_unit<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(Items {
            r: self,
            left: 0,
            done: false,
        })
    }
    fn deserialize_tuple<V: serde::de::Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_seq(Fields { r: self, left: len })
    }
    fn deserialize_tuple_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_seq(Fields { r: self, left: len })
    }
    fn deserialize_map<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_map(Items {
            r: self,
            left: 0,
            done: false,
        })
    }
    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_seq(Fields {
            r: self,
            left: fields.len(),
        })
    }
    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let i = self.long()?;
        let i = u32::try_from(i)
            .ok()
            .filter(|i| (*i as usize) < variants.len())
            .ok_or_else(|| {
                Error(format!(
                    "symbol {i} is not one of the {} known",
                    variants.len()
                ))
            })?;
        visitor.visit_enum(Symbol { i })
    }
    fn deserialize_identifier<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }
    fn deserialize_ignored_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error(
            "the field-order reader cannot skip a value of unknown type".into(),
        ))
    }
}

/// A record's fields, in order.
struct Fields<'a, 'de> {
    r: &'a mut Reader<'de>,
    left: usize,
}

impl<'de> serde::de::SeqAccess<'de> for Fields<'_, 'de> {
    type Error = Error;
    fn next_element_seed<T: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.r).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// An array's or a map's items, block by block.
struct Items<'a, 'de> {
    r: &'a mut Reader<'de>,
    left: usize,
    done: bool,
}

impl Items<'_, '_> {
    fn more(&mut self) -> Result<bool, Error> {
        if self.done {
            return Ok(false);
        }
        if self.left == 0 {
            self.left = self.r.block()?;
            if self.left == 0 {
                self.done = true;
                return Ok(false);
            }
        }
        self.left -= 1;
        Ok(true)
    }
}

impl<'de> serde::de::SeqAccess<'de> for Items<'_, 'de> {
    type Error = Error;
    fn next_element_seed<T: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if !self.more()? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.r).map(Some)
    }
}

impl<'de> serde::de::MapAccess<'de> for Items<'_, 'de> {
    type Error = Error;
    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if !self.more()? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.r).map(Some)
    }
    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Error> {
        seed.deserialize(&mut *self.r)
    }
}

/// An enum symbol by its index.
struct Symbol {
    i: u32,
}

impl<'de> serde::de::EnumAccess<'de> for Symbol {
    type Error = Error;
    type Variant = Self;
    fn variant_seed<V: serde::de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), Error> {
        use serde::de::IntoDeserializer;
        let v = seed.deserialize(self.i.into_deserializer())?;
        Ok((v, self))
    }
}

impl<'de> serde::de::VariantAccess<'de> for Symbol {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<T: serde::de::DeserializeSeed<'de>>(
        self,
        _: T,
    ) -> Result<T::Value, Error> {
        Err(Error("only symbols are read as enums".into()))
    }
    fn tuple_variant<V: serde::de::Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Error> {
        Err(Error("only symbols are read as enums".into()))
    }
    fn struct_variant<V: serde::de::Visitor<'de>>(
        self,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Error> {
        Err(Error("only symbols are read as enums".into()))
    }
}

/// Truto's bracket query serialisation (qs semantics) and path-segment encoding,
/// with Boost.URL doing the percent-encoding. Pure functions.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <string>
#include <string_view>

namespace orgpatch {

/// Appends `&name=value` pairs for one top-level query key: objects as
/// `name[k]=v` (nested `name[k][j]=v`), arrays as `name[]=x` and `name[][k]=v`,
/// booleans and numbers as text, null as an empty value. Brackets and every byte
/// outside RFC 3986 unreserved are percent-encoded.
void append_query_param(std::string& out, std::string_view name, const boost::json::value& value);

/// Percent-encodes every byte outside RFC 3986's unreserved set (ALPHA DIGIT - . _ ~),
/// so the result is always exactly one path segment.
std::string encode_path_segment(std::string_view segment);

/// `encode_path_segment` appended to `out` (no temporary).
void append_path_segment(std::string& out, std::string_view segment);

/// Parses a query string the way Truto's parser (qs) does: `a[b][c]=v`, `a[]=x`,
/// `a[0]=x`, `a[][k]=v`, brackets raw or percent-encoded, `+` as space. Values stay
/// strings. Repeated plain keys become arrays. Used by the emulator.
boost::json::object parse_bracket_query(std::string_view query);

}  // namespace orgpatch

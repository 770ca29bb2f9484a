#include "orgpatch/query.hpp"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace orgpatch {
namespace {

/// The parameters `append_query_param` gives for each member of `json_object`, in order.
std::string serialise(std::string_view json_object) {
  const boost::json::object obj = boost::json::parse(json_object).as_object();
  std::string out;
  for (const auto& kv : obj) append_query_param(out, kv.key(), kv.value());
  return out;
}

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

TEST(QueryTest, PathSegmentKeepsUnreserved) {
  EXPECT_EQ(encode_path_segment("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(encode_path_segment("2818e386-8dec-2562-9ede-5b8a0fbbdc71"),
            "2818e386-8dec-2562-9ede-5b8a0fbbdc71");
  EXPECT_EQ(encode_path_segment(""), "");
}

TEST(QueryTest, PathSegmentEncodesHostileCharacters) {
  EXPECT_EQ(encode_path_segment("a/b"), "a%2Fb");
  EXPECT_EQ(encode_path_segment("x?y#z"), "x%3Fy%23z");
  EXPECT_EQ(encode_path_segment("50%"), "50%25");
  EXPECT_EQ(encode_path_segment("a%2Fb"), "a%252Fb");
  EXPECT_EQ(encode_path_segment(".."), "..");  // job validation rejects it, not the encoder
  EXPECT_EQ(encode_path_segment("a b+c"), "a%20b%2Bc");
  EXPECT_EQ(encode_path_segment("[x]@:!$&'()*,;="), "%5Bx%5D%40%3A%21%24%26%27%28%29%2A%2C%3B%3D");
  EXPECT_EQ(encode_path_segment("\xC3\xA9"), "%C3%A9");                       // é
  EXPECT_EQ(encode_path_segment("\xE6\x97\xA5\xE6\x9C\xAC"), "%E6%97%A5%E6%9C%AC");  // 日本
  EXPECT_EQ(encode_path_segment(std::string("\x01\n\x7F\xFF", 4)), "%01%0A%7F%FF");
  EXPECT_EQ(encode_path_segment(std::string(1, '\0')), "%00");
}

TEST(QueryTest, PathSegmentEncodesEveryByteOutsideUnreserved) {
  for (int b = 0; b < 256; ++b) {
    const auto c = static_cast<unsigned char>(b);
    const std::string in(1, static_cast<char>(c));
    const std::string out = encode_path_segment(in);
    if (unreserved(c)) {
      EXPECT_EQ(out, in) << b;
    } else {
      static const char* hex = "0123456789ABCDEF";
      const std::string expected = {'%', hex[b >> 4], hex[b & 15]};
      EXPECT_EQ(out, expected) << b;
    }
  }
}

TEST(QueryTest, Scalars) {
  EXPECT_EQ(serialise(R"({"a":"b c&d=e"})"), "&a=b%20c%26d%3De");
  EXPECT_EQ(serialise(R"({"a":""})"), "&a=");
  EXPECT_EQ(serialise(R"({"a":true,"b":false})"), "&a=true&b=false");
  EXPECT_EQ(serialise(R"({"a":1,"b":-2,"c":0})"), "&a=1&b=-2&c=0");
  EXPECT_EQ(serialise(R"({"a":18446744073709551615})"), "&a=18446744073709551615");
  EXPECT_EQ(serialise(R"({"a":1.5,"b":-0.25})"), "&a=1.5&b=-0.25");
  EXPECT_EQ(serialise(R"({"a":1e300})"), "&a=1e%2B300");
  EXPECT_EQ(serialise(R"({"a":null})"), "&a=");
  EXPECT_EQ(serialise(R"({"a":"\u00e9"})"), "&a=%C3%A9");
}

TEST(QueryTest, NumbersFromValues) {
  std::string out;
  append_query_param(out, "i", boost::json::value(std::int64_t{-42}));
  append_query_param(out, "u", boost::json::value(std::numeric_limits<std::uint64_t>::max()));
  append_query_param(out, "d", boost::json::value(2.0));
  append_query_param(out, "e", boost::json::value(0.1));
  EXPECT_EQ(out, "&i=-42&u=18446744073709551615&d=2&e=0.1");
}

TEST(QueryTest, ArraysUseEmptyBrackets) {
  EXPECT_EQ(serialise(R"({"truto_exclude_fields":["id","name"]})"),
            "&truto_exclude_fields%5B%5D=id&truto_exclude_fields%5B%5D=name");
  EXPECT_EQ(serialise(R"({"a":[1,true,null,"x"]})"),
            "&a%5B%5D=1&a%5B%5D=true&a%5B%5D=&a%5B%5D=x");
}

TEST(QueryTest, ObjectsUseNamedBrackets) {
  EXPECT_EQ(serialise(R"({"remote_query":{"foo":"bar","nested":{"a":1}}})"),
            "&remote_query%5Bfoo%5D=bar&remote_query%5Bnested%5D%5Ba%5D=1");
  EXPECT_EQ(serialise(R"({"q":{"a b":{"c/d":{"e":"f g"}}}})"),
            "&q%5Ba%20b%5D%5Bc%2Fd%5D%5Be%5D=f%20g");
}

TEST(QueryTest, ArraysOfObjects) {
  EXPECT_EQ(serialise(R"({"a":[{"k":"v","j":1},{"k":"w"}]})"),
            "&a%5B%5D%5Bk%5D=v&a%5B%5D%5Bj%5D=1&a%5B%5D%5Bk%5D=w");
  EXPECT_EQ(serialise(R"({"r":{"list":[{"x":[true,false]}]}})"),
            "&r%5Blist%5D%5B%5D%5Bx%5D%5B%5D=true&r%5Blist%5D%5B%5D%5Bx%5D%5B%5D=false");
}

TEST(QueryTest, NestedArrays) {
  EXPECT_EQ(serialise(R"({"a":[[1,2],["x"]]})"),
            "&a%5B%5D%5B%5D=1&a%5B%5D%5B%5D=2&a%5B%5D%5B%5D=x");
}

TEST(QueryTest, EmptyContainersEmitNothing) {
  EXPECT_EQ(serialise(R"({"a":{}})"), "");
  EXPECT_EQ(serialise(R"({"a":[]})"), "");
  EXPECT_EQ(serialise(R"({"a":{"b":{},"c":[],"d":1}})"), "&a%5Bd%5D=1");
  EXPECT_EQ(serialise(R"({"a":[{},[]]})"), "");
}

TEST(QueryTest, NameIsEncoded) {
  std::string out;
  append_query_param(out, "a b[c]", boost::json::value("v"));
  EXPECT_EQ(out, "&a%20b%5Bc%5D=v");
}

TEST(QueryTest, AppendsWithoutClearing) {
  std::string out = "&x=1";
  append_query_param(out, "y", boost::json::value(2));
  EXPECT_EQ(out, "&x=1&y=2");
}

// DESIGN.md §2: the exact URL for the example job with the default config.
TEST(QueryTest, DesignExampleUrl) {
  const boost::json::object query = boost::json::parse(
      R"({"truto_exclude_fields":["id","name"],"remote_query":{"foo":"bar","nested":{"a":1}}})")
                                        .as_object();
  std::string url = "https://api.truto.one/unified/user-directory/organizations/";
  url += encode_path_segment("2818e386-8dec-2562-9ede-5b8a0fbbdc71");
  url += "?integrated_account_id=62f44730-dd91-461e-bd6a-aedd9e0ad79d";
  for (const auto& kv : query) append_query_param(url, kv.key(), kv.value());
  EXPECT_EQ(url,
            "https://api.truto.one/unified/user-directory/organizations/"
            "2818e386-8dec-2562-9ede-5b8a0fbbdc71?integrated_account_id=62f44730-dd91-461e-bd6a-"
            "aedd9e0ad79d&truto_exclude_fields%5B%5D=id&truto_exclude_fields%5B%5D=name&remote_query%"
            "5Bfoo%5D=bar&remote_query%5Bnested%5D%5Ba%5D=1");
}

}  // namespace
}  // namespace orgpatch

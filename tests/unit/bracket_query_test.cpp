// parse_bracket_query: Truto's (qs's) reading of bracket query strings.
#include "orgpatch/query.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace orgpatch {
namespace {

/// The parse of `query`, serialised, for comparison with expected JSON text.
std::string parsed(std::string_view query) { return boost::json::serialize(parse_bracket_query(query)); }

/// `expected_json` re-serialised, so that tests can write it with any spacing.
std::string json(std::string_view expected_json) {
  return boost::json::serialize(boost::json::parse(expected_json));
}

TEST(BracketQueryTest, PlainKeys) {
  EXPECT_EQ(parsed("a=1&b=two"), json(R"({"a":"1","b":"two"})"));
  EXPECT_EQ(parsed(""), json("{}"));
  EXPECT_EQ(parsed("?a=1"), json(R"({"a":"1"})"));
}

TEST(BracketQueryTest, NestedObjects) {
  EXPECT_EQ(parsed("a[b][c]=v"), json(R"({"a":{"b":{"c":"v"}}})"));
  EXPECT_EQ(parsed("a[b]=1&a[c]=2"), json(R"({"a":{"b":"1","c":"2"}})"));
  EXPECT_EQ(parsed("remote_query[foo]=bar&remote_query[nested][a]=1"),
            json(R"({"remote_query":{"foo":"bar","nested":{"a":"1"}}})"));
}

TEST(BracketQueryTest, EmptyBracketArrays) {
  EXPECT_EQ(parsed("a[]=x&a[]=y"), json(R"({"a":["x","y"]})"));
  EXPECT_EQ(parsed("a[]=x"), json(R"({"a":["x"]})"));
}

TEST(BracketQueryTest, IndexedArrays) {
  EXPECT_EQ(parsed("a[0]=x"), json(R"({"a":["x"]})"));
  EXPECT_EQ(parsed("a[0]=x&a[1]=y"), json(R"({"a":["x","y"]})"));
  // Indices order the items; holes close up (qs compacts sparse arrays).
  EXPECT_EQ(parsed("a[1]=y&a[0]=x"), json(R"({"a":["x","y"]})"));
  EXPECT_EQ(parsed("a[5]=x"), json(R"({"a":["x"]})"));
  // Past qs's arrayLimit of 20 an index is an object key.
  EXPECT_EQ(parsed("a[20]=x"), json(R"({"a":["x"]})"));
  EXPECT_EQ(parsed("a[21]=x"), json(R"({"a":{"21":"x"}})"));
  // Not canonical decimals: object keys.
  EXPECT_EQ(parsed("a[01]=x"), json(R"({"a":{"01":"x"}})"));
  EXPECT_EQ(parsed("a[-1]=x"), json(R"({"a":{"-1":"x"}})"));
}

TEST(BracketQueryTest, ArraysOfObjects) {
  EXPECT_EQ(parsed("a[][k]=v"), json(R"({"a":[{"k":"v"}]})"));
  EXPECT_EQ(parsed("a[0][k]=v&a[0][j]=w&a[1][k]=u"), json(R"({"a":[{"k":"v","j":"w"},{"k":"u"}]})"));
}

TEST(BracketQueryTest, EncodedBrackets) {
  EXPECT_EQ(parsed("a%5B%5D=x&a%5B%5D=y"), json(R"({"a":["x","y"]})"));
  EXPECT_EQ(parsed("a%5bb%5d%5Bc%5D=v"), json(R"({"a":{"b":{"c":"v"}}})"));
  // Encoded and raw brackets name the same key.
  EXPECT_EQ(parsed("a%5B%5D=x&a[]=y"), json(R"({"a":["x","y"]})"));
}

TEST(BracketQueryTest, DesignExampleQuery) {
  // The query string of DESIGN.md §2's example URL.
  EXPECT_EQ(parsed("integrated_account_id=62f44730-dd91-461e-bd6a-aedd9e0ad79d"
                   "&truto_exclude_fields%5B%5D=id&truto_exclude_fields%5B%5D=name"
                   "&remote_query%5Bfoo%5D=bar&remote_query%5Bnested%5D%5Ba%5D=1"),
            json(R"({"integrated_account_id":"62f44730-dd91-461e-bd6a-aedd9e0ad79d",
                     "truto_exclude_fields":["id","name"],
                     "remote_query":{"foo":"bar","nested":{"a":"1"}}})"));
}

TEST(BracketQueryTest, PlusIsSpaceAndPercentDecoding) {
  EXPECT_EQ(parsed("a=b+c"), json(R"({"a":"b c"})"));
  EXPECT_EQ(parsed("a=%41%20%2B%26%3D"), json(R"({"a":"A +&="})"));
  EXPECT_EQ(parsed("a+b=1"), json(R"({"a b":"1"})"));
  EXPECT_EQ(parsed("na%6De=%C3%A9"), json(R"({"name":"é"})"));
  // A malformed escape leaves the text as it was, as qs does.
  EXPECT_EQ(parsed("a=%zz"), json(R"({"a":"%zz"})"));
  EXPECT_EQ(parsed("a=100%"), json(R"({"a":"100%"})"));
  EXPECT_EQ(parsed("a=%4"), json(R"({"a":"%4"})"));
}

TEST(BracketQueryTest, RepeatedPlainKeysBecomeArrays) {
  EXPECT_EQ(parsed("a=1&a=2&a=3"), json(R"({"a":["1","2","3"]})"));
  EXPECT_EQ(parsed("a[b]=1&a[b]=2"), json(R"({"a":{"b":["1","2"]}})"));
}

TEST(BracketQueryTest, EmptyValues) {
  EXPECT_EQ(parsed("a="), json(R"({"a":""})"));
  EXPECT_EQ(parsed("a"), json(R"({"a":""})"));
  EXPECT_EQ(parsed("a[]="), json(R"({"a":[""]})"));
  EXPECT_EQ(parsed("&&a=1&&"), json(R"({"a":"1"})"));
  EXPECT_EQ(parsed("=x"), json("{}"));
}

TEST(BracketQueryTest, MixedShapesMergeAsQsDoes) {
  EXPECT_EQ(parsed("a=1&a[b]=2"), json(R"({"a":["1",{"b":"2"}]})"));
  EXPECT_EQ(parsed("a[b]=1&a=2"), json(R"({"a":{"b":"1","2":true}})"));
  EXPECT_EQ(parsed("a[]=1&a[b]=2"), json(R"({"a":{"0":"1","b":"2"}})"));
}

TEST(BracketQueryTest, MalformedBracketsAreKeys) {
  EXPECT_EQ(parsed("a[=1"), json(R"({"a[":"1"})"));
  EXPECT_EQ(parsed("a]=1"), json(R"({"a]":"1"})"));
  EXPECT_EQ(parsed("a[b=1"), json(R"({"a[b":"1"})"));
  EXPECT_EQ(parsed("[=x"), json(R"({"[":"x"})"));
  EXPECT_EQ(parsed("[a]=x"), json(R"({"a":"x"})"));
  EXPECT_EQ(parsed("a[[b]]=x"), json(R"({"a[":{"b":"x"}})"));
  EXPECT_EQ(parsed("a[b]c[d]=x"), json(R"({"a":{"b":{"d":"x"}}})"));
  // "]=" ends the key even when '=' comes inside a bracket.
  EXPECT_EQ(parsed("a[b=c]=d"), json(R"({"a":{"b=c":"d"}})"));
}

TEST(BracketQueryTest, DepthLimitKeepsTheRestAsOneKey) {
  EXPECT_EQ(parsed("a[b][c][d][e][f][g][h]=1"),
            json(R"({"a":{"b":{"c":{"d":{"e":{"f":{"[g][h]":"1"}}}}}}})"));
}

TEST(BracketQueryTest, HostileInputDoesNotCrash) {
  const std::string_view inputs[] = {"[", "]", "[]", "[]=", "[][]=x", "a[][][]=x", "%", "%%", "%5B", "a[%5D=1",
                                     "&", "=", "==", "a==b", "a[]]=x", "a[0][]=x&a[0]=y", "__proto__[x]=1",
                                     "a[__proto__]=1"};
  for (auto in : inputs) EXPECT_NO_THROW(parse_bracket_query(in)) << in;
  EXPECT_EQ(parsed("[]=x"), json(R"({"0":"x"})"));
  EXPECT_EQ(parsed("a[__proto__]=1"), json(R"({"a":{}})"));
  std::string deep = "a";
  for (int i = 0; i < 10000; ++i) deep += "[x]";
  EXPECT_NO_THROW(parse_bracket_query(deep + "=1"));
  std::string many;
  for (int i = 0; i < 2000; ++i) many += "a[]=" + std::to_string(i) + "&";
  EXPECT_EQ(parse_bracket_query(many).at("a").as_array().size(), 2000u);
}

}  // namespace
}  // namespace orgpatch

#include "orgpatch/job.hpp"

#include "orgpatch/query.hpp"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orgpatch {
namespace {

const std::string k_account = "62f44730-dd91-461e-bd6a-aedd9e0ad79d";
const std::string k_org = "2818e386-8dec-2562-9ede-5b8a0fbbdc71";

job parse_ok(std::string_view line, const job_parse_options& options = {}, std::uint64_t line_no = 7) {
  auto r = parse_job(line, line_no, options);
  if (const auto* e = std::get_if<input_error>(&r)) {
    ADD_FAILURE() << "unexpected error \"" << e->to_string() << "\" for " << line;
    return {};
  }
  return std::get<job>(std::move(r));
}

input_error parse_error(std::string_view line, const job_parse_options& options = {}) {
  auto r = parse_job(line, 3, options);
  if (std::holds_alternative<job>(r)) {
    ADD_FAILURE() << "expected an error for " << line;
    return {};
  }
  return std::get<input_error>(std::move(r));
}

/// A valid line with `members` (JSON text, e.g. `"key":"x"`) added at the end.
std::string line_with(std::string_view members) {
  std::string s = R"({"id":")" + k_org + R"(","integrated_account_id":")" + k_account + R"(","body":{})";
  if (!members.empty()) {
    s += ',';
    s += members;
  }
  s += '}';
  return s;
}

/// A line whose `id` is the JSON text `id_json`.
std::string line_with_id(std::string_view id_json) {
  return R"({"id":)" + std::string(id_json) + R"(,"integrated_account_id":")" + k_account +
         R"(","body":{}})";
}

/// A line whose `body` is the JSON text `body_json`.
std::string line_with_body(std::string_view body_json) {
  return R"({"id":"x","integrated_account_id":")" + k_account + R"(","body":)" +
         std::string(body_json) + "}";
}

std::string query_of(std::string_view query_json, const job_parse_options& options = {}) {
  return parse_ok(line_with(std::string(R"("query":)") + std::string(query_json)), options).query;
}

TEST(JobTest, MinimalLine) {
  const std::string line = line_with("");
  const job j = parse_ok(line, {}, 42);
  EXPECT_EQ(j.id, k_org);
  EXPECT_EQ(j.integrated_account_id, k_account);
  EXPECT_EQ(j.body, "{}");
  EXPECT_EQ(j.query, "");
  EXPECT_EQ(j.key, "42");
  EXPECT_FALSE(j.key_given);
  EXPECT_EQ(j.line, 42u);
  EXPECT_EQ(j.idempotency_key, "");
  EXPECT_EQ(j.source, line);
}

TEST(JobTest, DesignSection5Example) {
  const std::string line =
      R"({"id":"2818e386-8dec-2562-9ede-5b8a0fbbdc71","integrated_account_id":"62f44730-dd91-461e-bd6a-aedd9e0ad79d","body":{"name":"Acme EMEA","remote_data":{"session_expiry":720}},"query":{"truto_exclude_fields":["licenses"],"remote_query":{"foo":"bar"}},"key":"acme-emea-1"})";
  const job j = parse_ok(line);
  EXPECT_EQ(j.key, "acme-emea-1");
  EXPECT_TRUE(j.key_given);
  EXPECT_EQ(j.body, R"({"name":"Acme EMEA","remote_data":{"session_expiry":720}})");
  EXPECT_EQ(j.query, "&truto_exclude_fields%5B%5D=licenses&remote_query%5Bfoo%5D=bar");
  EXPECT_EQ(j.source, line);
}

// DESIGN.md §2: the example job gives exactly the documented URL.
TEST(JobTest, DesignSection2ExactUrl) {
  const job j = parse_ok(
      R"({"id":"2818e386-8dec-2562-9ede-5b8a0fbbdc71","integrated_account_id":"62f44730-dd91-461e-bd6a-aedd9e0ad79d","body":{},"query":{"truto_exclude_fields":["id","name"],"remote_query":{"foo":"bar","nested":{"a":1}}}})");
  const std::string url = "https://api.truto.one/unified/user-directory/organizations/" +
                          encode_path_segment(j.id) + "?integrated_account_id=" +
                          j.integrated_account_id + j.query;
  EXPECT_EQ(url,
            "https://api.truto.one/unified/user-directory/organizations/"
            "2818e386-8dec-2562-9ede-5b8a0fbbdc71?integrated_account_id=62f44730-dd91-461e-bd6a-"
            "aedd9e0ad79d&truto_exclude_fields%5B%5D=id&truto_exclude_fields%5B%5D=name&remote_query%"
            "5Bfoo%5D=bar&remote_query%5Bnested%5D%5Ba%5D=1");
}

TEST(JobTest, MembersInAnyOrderWithWhitespace) {
  const std::string line = " \t{ \"body\" : { } ,\r\n \"integrated_account_id\":\"" + k_account +
                           "\" , \"key\" : \"k\", \"id\" : \"o\" }  ";
  const job j = parse_ok(line);
  EXPECT_EQ(j.id, "o");
  EXPECT_EQ(j.body, "{ }");
  EXPECT_EQ(j.key, "k");
}

TEST(JobTest, BodyIsKeptByteForByte) {
  const std::vector<std::string> bodies = {
      R"({})",
      R"({  })",
      R"({ "name" :"Acme\u00e9 \ud83d\ude00 \"q\" \\ \/" , "n":[1, 2.50e+3 ,-0, 0.0E-0],"x":{ } ,"t":true,"f":false,"z":null})",
      "{\"name\":\"caf\xC3\xA9 \xF0\x9F\x98\x80\",\"remote_data\":{\"session_expiry\":720}}",
      "{\r\n\t\"a\" :\t[ ]\r\n}",
      R"({"dup":1,"dup":2})",
  };
  for (const auto& body : bodies) {
    const job j = parse_ok(line_with_body(body));
    EXPECT_EQ(j.body, body);
  }
}

TEST(JobTest, BodyMustBeAnObject) {
  for (const char* body : {"[]", "\"{}\"", "null", "1", "true"}) {
    const input_error e = parse_error(line_with_body(body));
    EXPECT_EQ(e.field, "body") << body;
  }
  const input_error missing =
      parse_error(R"({"id":"x","integrated_account_id":")" + k_account + R"("})");
  EXPECT_EQ(missing.field, "body");
  EXPECT_EQ(missing.message, "required");
}

TEST(JobTest, BodyIsFullyValidated) {
  for (const char* body : {
           R"({"a":01})", R"({"a":1.})", R"({"a":.5})", R"({"a":-})", R"({"a":1e})",
           R"({"a":+1})", R"({"a":NaN})", R"({"a":tru})", R"({"a":nul})", R"({"a":[1,]})",
           R"({"a":1,})", R"({'a':1})", R"({"a" 1})", R"({a:1})", R"({"a":"\x"})",
           R"({"a":"\u12"})", R"({"a":"\ud800"})", R"({"a":"\udc00"})", R"({"a":"\ud800\u0041"})",
           "{\"a\":\"tab\there\"}", "{\"a\":\"nl\nhere\"}", R"({"a":1 /* c */})", R"({"a":[1 2]})",
       }) {
    const input_error e = parse_error(line_with_body(body));
    EXPECT_EQ(e.field, "") << body;
    EXPECT_EQ(e.message.rfind("not valid JSON: ", 0), 0u) << body << " -> " << e.message;
  }
}

TEST(JobTest, ValidNumbersAndEscapesInBody) {
  for (const char* body : {
           R"({"a":0})", R"({"a":-0})", R"({"a":-1.5e-7})", R"({"a":1E+2})",
           R"({"a":123456789012345678901234567890})", R"({"a":1e999})",
           R"({"a":"\"\\\/\b\f\n\r\t\u0000\uFFFF\uD834\uDD1E"})",
       }) {
    EXPECT_EQ(parse_ok(line_with_body(body)).body, body);
  }
}

TEST(JobTest, InvalidUtf8IsRejected) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"\xC3\x28", "bad continuation"},
      {"\xFF", "invalid byte"},
      {"\xC0\xAF", "overlong 2-byte"},
      {"\xE0\x80\xAF", "overlong 3-byte"},
      {"\xED\xA0\x80", "UTF-16 surrogate"},
      {"\xE6\x97", "truncated"},
      {"\xF4\x90\x80\x80", "past U+10FFFF"},
      {"\x80", "lone continuation"},
  };
  for (const auto& [bytes, what] : cases) {
    // In the body.
    const input_error b = parse_error(line_with_body("{\"name\":\"a" + bytes + "b\"}"));
    EXPECT_EQ(b.field, "") << what;
    EXPECT_EQ(b.message.rfind("not valid UTF-8", 0), 0u) << what << ": " << b.message;
    // In the id.
    const input_error i = parse_error(line_with_id("\"" + bytes + "\""));
    EXPECT_EQ(i.field, "") << what;
    EXPECT_EQ(i.message.rfind("not valid UTF-8", 0), 0u) << what << ": " << i.message;
    // In a member name.
    const input_error k = parse_error(line_with("\"" + bytes + "\":1"));
    EXPECT_EQ(k.message.rfind("not valid UTF-8", 0), 0u) << what << ": " << k.message;
  }
  // Outside any string.
  EXPECT_EQ(parse_error(line_with_body("{\"a\":1\xFF}")).message.rfind("not valid UTF-8", 0), 0u);
  // The position is reported (1-based byte offset).
  EXPECT_EQ(parse_error("{\"id\":\"\xFF\"}").message, "not valid UTF-8 at byte 8");
}

TEST(JobTest, ValidUtf8IsAccepted) {
  const std::string body = "{\"a\":\"\xC2\x80 \xDF\xBF \xE0\xA0\x80 \xED\x9F\xBF \xEE\x80\x80 \xEF\xBF\xBF "
                           "\xF0\x90\x80\x80 \xF4\x8F\xBF\xBF\"}";
  EXPECT_EQ(parse_ok(line_with_body(body)).body, body);
}

TEST(JobTest, LineMustBeOneJsonObject) {
  EXPECT_EQ(parse_error("[1,2]").message, "not a JSON object");
  EXPECT_EQ(parse_error("\"s\"").message, "not a JSON object");
  EXPECT_EQ(parse_error(" 42 ").message, "not a JSON object");
  EXPECT_EQ(parse_error("").field, "");
  EXPECT_FALSE(parse_error("").message.empty());
  for (const std::string& line : {line_with("") + "x", line_with("") + "{}", line_with("") + ",",
                                  std::string("{"), std::string("{\"id\":"), line_with("").substr(0, 30),
                                  std::string("[1] x")}) {
    const input_error e = parse_error(line);
    EXPECT_EQ(e.field, "") << line;
    EXPECT_EQ(e.message.rfind("not valid JSON: ", 0), 0u) << line << " -> " << e.message;
  }
}

TEST(JobTest, DeepNestingIsAnErrorNotACrash) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const input_error e = parse_error(line_with_body("{\"a\":" + deep + "}"));
  EXPECT_EQ(e.field, "");
  EXPECT_NE(e.message.find("nested deeper than 64"), std::string::npos) << e.message;

  const std::string deep_objects = [] {
    std::string s;
    for (int i = 0; i < 100000; ++i) s += "{\"a\":";
    s += "1";
    s += std::string(100000, '}');
    return s;
  }();
  EXPECT_NE(parse_error(line_with_body(deep_objects)).message.find("nested deeper"), std::string::npos);

  // The line's object is level 1 and body level 2: 62 arrays inside reach 64.
  const std::string ok_body = "{\"a\":" + std::string(62, '[') + std::string(62, ']') + "}";
  EXPECT_EQ(parse_ok(line_with_body(ok_body)).body, ok_body);
  const std::string too_deep = "{\"a\":" + std::string(63, '[') + std::string(63, ']') + "}";
  EXPECT_EQ(parse_error(line_with_body(too_deep)).field, "");
}

TEST(JobTest, HostileIdsAreEncodedAsOneSegment) {
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {R"("a/b")", "a/b", "a%2Fb"},
      {R"("x?y#z")", "x?y#z", "x%3Fy%23z"},
      {R"("50%")", "50%", "50%25"},
      {R"("a%2Fb")", "a%2Fb", "a%252Fb"},
      {R"("../etc")", "../etc", "..%2Fetc"},
      {R"(".a")", ".a", ".a"},
      {R"("a.")", "a.", "a."},
      {R"(" ")", " ", "%20"},
      {"\"\xC3\xA9\"", "\xC3\xA9", "%C3%A9"},
      {R"("\u00e9")", "\xC3\xA9", "%C3%A9"},
      {"\"\xE6\x97\xA5\xE6\x9C\xAC\"", "\xE6\x97\xA5\xE6\x9C\xAC", "%E6%97%A5%E6%9C%AC"},
      {R"("\u65e5\u672c")", "\xE6\x97\xA5\xE6\x9C\xAC", "%E6%97%A5%E6%9C%AC"},
      {R"("\u0001")", "\x01", "%01"},
      {R"("a\nb")", "a\nb", "a%0Ab"},
      {R"("\u0000")", std::string(1, '\0'), "%00"},
      {R"("a\/b")", "a/b", "a%2Fb"},
      {R"("\ud83d\ude00")", "\xF0\x9F\x98\x80", "%F0%9F%98%80"},
  };
  for (const auto& [json, id, encoded] : cases) {
    const job j = parse_ok(line_with_id(json));
    EXPECT_EQ(j.id, id) << json;
    EXPECT_EQ(encode_path_segment(j.id), encoded) << json;
    EXPECT_EQ(encode_path_segment(j.id).find('/'), std::string::npos);
  }
}

TEST(JobTest, IdOfOnlyDotsIsInvalid) {
  for (const char* json : {R"(".")", R"("..")", R"("...")", R"("\u002e\u002e")"}) {
    const input_error e = parse_error(line_with_id(json));
    EXPECT_EQ(e.field, "id") << json;
    EXPECT_NE(e.message.find("dots"), std::string::npos) << e.message;
  }
}

TEST(JobTest, IdRules) {
  EXPECT_EQ(parse_error(line_with_id(R"("")")).field, "id");
  EXPECT_EQ(parse_error(line_with_id("12")).field, "id");
  EXPECT_EQ(parse_error(line_with_id("null")).field, "id");
  EXPECT_EQ(parse_error(line_with_id("[\"a\"]")).field, "id");
  const input_error missing = parse_error(R"({"integrated_account_id":")" + k_account + R"(","body":{}})");
  EXPECT_EQ(missing.field, "id");
  EXPECT_EQ(missing.message, "required");
  EXPECT_EQ(missing.to_string(), "id: required");

  // 1 to 1024 bytes, counted after unescaping.
  EXPECT_EQ(parse_ok(line_with_id("\"" + std::string(1024, 'a') + "\"")).id.size(), 1024u);
  EXPECT_EQ(parse_error(line_with_id("\"" + std::string(1025, 'a') + "\"")).field, "id");
  std::string escaped_1024 = "\"";
  for (int i = 0; i < 1024; ++i) escaped_1024 += "\\u0041";
  EXPECT_EQ(parse_ok(line_with_id(escaped_1024 + "\"")).id, std::string(1024, 'A'));
  std::string e_acute_512 = "\"";
  for (int i = 0; i < 512; ++i) e_acute_512 += "\xC3\xA9";
  EXPECT_EQ(parse_ok(line_with_id(e_acute_512 + "\"")).id.size(), 1024u);
  EXPECT_EQ(parse_error(line_with_id(e_acute_512 + "x\"")).field, "id");
}

TEST(JobTest, IsUuid) {
  EXPECT_TRUE(is_uuid("62f44730-dd91-461e-bd6a-aedd9e0ad79d"));
  EXPECT_TRUE(is_uuid("62F44730-DD91-461E-BD6A-AEDD9E0AD79D"));
  EXPECT_TRUE(is_uuid("00000000-0000-0000-0000-000000000000"));
  EXPECT_FALSE(is_uuid(""));
  EXPECT_FALSE(is_uuid("62f44730dd91461ebd6aaedd9e0ad79d"));
  EXPECT_FALSE(is_uuid("62f44730-dd91-461e-bd6a-aedd9e0ad79"));
  EXPECT_FALSE(is_uuid("62f44730-dd91-461e-bd6a-aedd9e0ad79dd"));
  EXPECT_FALSE(is_uuid("62f44730-dd91-461e-bd6a-aedd9e0ad79g"));
  EXPECT_FALSE(is_uuid("62f44730-dd91-461e-bd6aaaedd9e0ad79d-"));
  EXPECT_FALSE(is_uuid("{62f44730-dd91-461e-bd6a-aedd9e0ad79d}"));
  EXPECT_FALSE(is_uuid(" 62f44730-dd91-461e-bd6a-aedd9e0ad79"));
}

TEST(JobTest, IntegratedAccountId) {
  const std::string no_account = R"({"id":"o","body":{}})";
  const input_error missing = parse_error(no_account);
  EXPECT_EQ(missing.field, "integrated_account_id");

  const input_error bad =
      parse_error(R"({"id":"o","integrated_account_id":"62f44730dd91461ebd6aaedd9e0ad79d","body":{}})");
  EXPECT_EQ(bad.field, "integrated_account_id");
  EXPECT_EQ(bad.message, "not a UUID");
  EXPECT_EQ(bad.to_string(), "integrated_account_id: not a UUID");
  EXPECT_EQ(parse_error(R"({"id":"o","integrated_account_id":7,"body":{}})").field,
            "integrated_account_id");
  EXPECT_EQ(parse_error(R"({"id":"o","integrated_account_id":null,"body":{}})").field,
            "integrated_account_id");

  job_parse_options with_default;
  with_default.default_integrated_account_id = "11111111-2222-3333-4444-555555555555";
  EXPECT_EQ(parse_ok(no_account, with_default).integrated_account_id,
            "11111111-2222-3333-4444-555555555555");
  // A given one wins over the default, and is still checked.
  EXPECT_EQ(parse_ok(line_with(""), with_default).integrated_account_id, k_account);
  EXPECT_EQ(
      parse_error(R"({"id":"o","integrated_account_id":"nope","body":{}})", with_default).field,
      "integrated_account_id");
  job_parse_options bad_default;
  bad_default.default_integrated_account_id = "not-a-uuid";
  EXPECT_EQ(parse_error(no_account, bad_default).field, "integrated_account_id");
}

TEST(JobTest, QueryParameters) {
  EXPECT_EQ(query_of(R"({})"), "");
  EXPECT_EQ(query_of(R"({"truto_response_format":"raw"})"), "&truto_response_format=raw");
  for (const char* f : {"unified", "raw", "normalized", "stream"})
    EXPECT_EQ(query_of(std::string(R"({"truto_response_format":")") + f + "\"}"),
              std::string("&truto_response_format=") + f);
  EXPECT_EQ(query_of(R"({"truto_ignore_remote_data":true})"), "&truto_ignore_remote_data=true");
  EXPECT_EQ(query_of(R"({"truto_ignore_remote_data":false})"), "&truto_ignore_remote_data=false");
  EXPECT_EQ(query_of(R"({"truto_exclude_fields":[]})"), "");
  EXPECT_EQ(query_of(R"({"truto_exclude_fields":["a b","c"]})"),
            "&truto_exclude_fields%5B%5D=a%20b&truto_exclude_fields%5B%5D=c");
}

TEST(JobTest, QueryKeepsTheOrderGiven) {
  EXPECT_EQ(query_of(R"({"remote_query":{"z":"1","a":"2"},"truto_ignore_remote_data":true,"truto_response_format":"unified"})"),
            "&remote_query%5Bz%5D=1&remote_query%5Ba%5D=2&truto_ignore_remote_data=true"
            "&truto_response_format=unified");
}

TEST(JobTest, RemoteQueryValues) {
  EXPECT_EQ(query_of(R"({"remote_query":{"list":[{"k":"v","n":1},{"k":"w"}],"flag":true,"off":false,"n":[1,-2,2.50,1e+5],"none":null,"e":{},"ea":[],"s":"a&b=c d"}})"),
            "&remote_query%5Blist%5D%5B%5D%5Bk%5D=v&remote_query%5Blist%5D%5B%5D%5Bn%5D=1"
            "&remote_query%5Blist%5D%5B%5D%5Bk%5D=w&remote_query%5Bflag%5D=true"
            "&remote_query%5Boff%5D=false&remote_query%5Bn%5D%5B%5D=1&remote_query%5Bn%5D%5B%5D=-2"
            "&remote_query%5Bn%5D%5B%5D=2.50&remote_query%5Bn%5D%5B%5D=1e%2B5"
            "&remote_query%5Bnone%5D=&remote_query%5Bs%5D=a%26b%3Dc%20d");
  // Nested arrays and escaped keys.
  EXPECT_EQ(query_of(R"({"remote_query":{"m":[[1,2],["x"]],"k\u00e9y":"\u65e5"}})"),
            "&remote_query%5Bm%5D%5B%5D%5B%5D=1&remote_query%5Bm%5D%5B%5D%5B%5D=2"
            "&remote_query%5Bm%5D%5B%5D%5B%5D=x&remote_query%5Bk%C3%A9y%5D=%E6%97%A5");
  // Numbers keep their JSON text, even past double range.
  EXPECT_EQ(query_of(R"({"remote_query":{"big":123456789012345678901234567890,"huge":1e999}})"),
            "&remote_query%5Bbig%5D=123456789012345678901234567890&remote_query%5Bhuge%5D=1e999");
}

TEST(JobTest, QueryErrors) {
  const auto error_of = [](std::string_view query_json) {
    return parse_error(line_with(std::string(R"("query":)") + std::string(query_json)));
  };
  EXPECT_EQ(error_of("[]").field, "query");
  EXPECT_EQ(error_of("\"a=b\"").field, "query");
  EXPECT_EQ(error_of("null").field, "query");
  const input_error unknown = error_of(R"({"foo":1})");
  EXPECT_EQ(unknown.field, "query.foo");
  EXPECT_EQ(unknown.to_string().rfind("query.foo: unknown", 0), 0u) << unknown.to_string();
  EXPECT_EQ(error_of(R"({"remote_query":{},"integrated_account_id":"x"})").field,
            "query.integrated_account_id");
  EXPECT_EQ(error_of(R"({"truto_response_format":"json"})").field, "query.truto_response_format");
  EXPECT_EQ(error_of(R"({"truto_response_format":"RAW"})").field, "query.truto_response_format");
  EXPECT_EQ(error_of(R"({"truto_response_format":1})").field, "query.truto_response_format");
  EXPECT_EQ(error_of(R"({"truto_ignore_remote_data":"true"})").field, "query.truto_ignore_remote_data");
  EXPECT_EQ(error_of(R"({"truto_ignore_remote_data":1})").field, "query.truto_ignore_remote_data");
  EXPECT_EQ(error_of(R"({"truto_ignore_remote_data":null})").field, "query.truto_ignore_remote_data");
  EXPECT_EQ(error_of(R"({"truto_exclude_fields":"id"})").field, "query.truto_exclude_fields");
  EXPECT_EQ(error_of(R"({"truto_exclude_fields":["id",1]})").field, "query.truto_exclude_fields");
  EXPECT_EQ(error_of(R"({"truto_exclude_fields":[["id"]]})").field, "query.truto_exclude_fields");
  EXPECT_EQ(error_of(R"({"truto_exclude_fields":[null]})").field, "query.truto_exclude_fields");
  EXPECT_EQ(error_of(R"({"remote_query":"foo=bar"})").field, "query.remote_query");
  EXPECT_EQ(error_of(R"({"remote_query":[1]})").field, "query.remote_query");
  const input_error dup = error_of(R"({"truto_ignore_remote_data":true,"truto_ignore_remote_data":false})");
  EXPECT_EQ(dup.field, "query.truto_ignore_remote_data");
  EXPECT_EQ(dup.message, "duplicate field");
  const input_error nested_dup = error_of(R"({"remote_query":{"a":{"b":1,"b":2}}})");
  EXPECT_EQ(nested_dup.field, "query.remote_query.a.b");
  EXPECT_EQ(nested_dup.message, "duplicate key");
}

TEST(JobTest, DefaultQueryMerge) {
  const boost::json::object defaults =
      boost::json::parse(R"({"truto_response_format":"raw","truto_ignore_remote_data":true,"remote_query":{"x":[1,2.5]}})")
          .as_object();
  job_parse_options options;
  options.default_query = &defaults;
  // No query: every default, in the configured order.
  EXPECT_EQ(parse_ok(line_with(""), options).query,
            "&truto_response_format=raw&truto_ignore_remote_data=true"
            "&remote_query%5Bx%5D%5B%5D=1&remote_query%5Bx%5D%5B%5D=2.5");
  // The job's own keys first and instead of the defaults, then the rest.
  EXPECT_EQ(query_of(R"({"remote_query":{"y":"z"},"truto_response_format":"stream"})", options),
            "&remote_query%5By%5D=z&truto_response_format=stream&truto_ignore_remote_data=true");
  // A key given with an empty value still overrides the default.
  EXPECT_EQ(query_of(R"({"remote_query":{}})", options),
            "&truto_response_format=raw&truto_ignore_remote_data=true");
  const boost::json::object empty;
  options.default_query = &empty;
  EXPECT_EQ(parse_ok(line_with(""), options).query, "");
}

TEST(JobTest, KeyRules) {
  const job j = parse_ok(line_with(R"("key":"acme-1")"));
  EXPECT_EQ(j.key, "acme-1");
  EXPECT_TRUE(j.key_given);
  EXPECT_EQ(parse_ok(line_with(R"("key":"12a")")).key, "12a");
  EXPECT_EQ(parse_ok(line_with(R"("key":" 12")")).key, " 12");
  EXPECT_EQ(parse_ok(line_with("\"key\":\"\xD9\xA3\"")).key, "\xD9\xA3");  // Arabic-Indic 3
  EXPECT_EQ(parse_ok(line_with(R"("key":"a\"b")")).key, "a\"b");
  EXPECT_EQ(parse_ok(line_with("\"key\":\"" + std::string(256, 'k') + "\"")).key.size(), 256u);

  const input_error digits = parse_error(line_with(R"("key":"123")"));
  EXPECT_EQ(digits.field, "key");
  EXPECT_NE(digits.message.find("not all digits"), std::string::npos);
  EXPECT_EQ(parse_error(line_with(R"("key":"0")")).field, "key");
  EXPECT_EQ(parse_error(line_with(R"("key":"\u0031\u0032")")).field, "key");
  EXPECT_EQ(parse_error(line_with(R"("key":"")")).field, "key");
  EXPECT_EQ(parse_error(line_with("\"key\":\"" + std::string(257, 'k') + "\"")).field, "key");
  EXPECT_EQ(parse_error(line_with(R"("key":17)")).field, "key");
  EXPECT_EQ(parse_error(line_with(R"("key":null)")).field, "key");
}

TEST(JobTest, IdempotencyKeyRules) {
  EXPECT_EQ(parse_ok(line_with(R"("idempotency_key":"abc-123_~!{}")")).idempotency_key, "abc-123_~!{}");
  EXPECT_EQ(parse_ok(line_with("\"idempotency_key\":\"" + std::string(255, 'x') + "\"")).idempotency_key.size(),
            255u);
  for (const std::string& bad : {std::string(R"("")"), "\"" + std::string(256, 'x') + "\"",
                                 std::string(R"("a b")"), std::string(R"("a\tb")"),
                                 std::string("\"caf\xC3\xA9\""), std::string(R"("\u007f")"),
                                 std::string("5"), std::string("null")}) {
    EXPECT_EQ(parse_error(line_with("\"idempotency_key\":" + bad)).field, "idempotency_key") << bad;
  }
}

TEST(JobTest, UnknownAndDuplicateFields) {
  const input_error unknown = parse_error(line_with(R"("name":"Acme")"));
  EXPECT_EQ(unknown.field, "name");
  EXPECT_EQ(unknown.message, "unknown field");
  EXPECT_EQ(unknown.to_string(), "name: unknown field");

  const input_error dup = parse_error(line_with(R"("id":"other")"));
  EXPECT_EQ(dup.field, "id");
  EXPECT_EQ(dup.message, "duplicate field");
  // An escaped name is the same name.
  EXPECT_EQ(parse_error(line_with(R"("\u0069d":"other")")).field, "id");
  EXPECT_EQ(parse_error(line_with(R"("body":{})")).field, "body");
  // A very long unknown name is shortened in the error.
  EXPECT_LE(parse_error(line_with("\"" + std::string(5000, 'n') + "\":1")).field.size(), 110u);
  // Syntax errors come first, even after an unknown field.
  EXPECT_EQ(parse_error(line_with(R"("name":"Acme")") + "x").field, "");
}

TEST(JobTest, InputErrorToString) {
  EXPECT_EQ((input_error{"query.remote_query", "must be an object"}).to_string(),
            "query.remote_query: must be an object");
  EXPECT_EQ((input_error{"", "not valid UTF-8 at byte 3"}).to_string(), "not valid UTF-8 at byte 3");
}

TEST(JobTest, FindJobKey) {
  // Invalid for another reason, but its key is readable.
  EXPECT_EQ(find_job_key(R"({"id":"..","key":"k-1","body":{}})"), std::optional<std::string>("k-1"));
  EXPECT_EQ(find_job_key(R"({"key":"k\u002d2","unknown":1})"), std::optional<std::string>("k-2"));
  EXPECT_EQ(find_job_key(R"({"id":"x"})"), std::nullopt);
  EXPECT_EQ(find_job_key(R"({"key":"123"})"), std::nullopt);
  EXPECT_EQ(find_job_key(R"({"key":""})"), std::nullopt);
  EXPECT_EQ(find_job_key(R"({"key":5})"), std::nullopt);
  EXPECT_EQ(find_job_key(R"({"key":"a","key":"b"})"), std::nullopt);
  EXPECT_EQ(find_job_key(R"({"key":"a",)"), std::nullopt);
  EXPECT_EQ(find_job_key(R"(["key","a"])"), std::nullopt);
}

}  // namespace
}  // namespace orgpatch

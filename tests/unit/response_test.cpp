// response_parser: what it takes from Unified API bodies, and what it refuses.
#include "orgpatch/response.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using orgpatch::response_info;
using orgpatch::response_parser;
using namespace std::string_view_literals;

constexpr std::size_t k_limit = 1 << 20;

/// The body in a buffer with the padding the parser asks for, as the engine keeps it.
std::string padded(std::string_view text) {
  std::string s;
  s.reserve(text.size() + response_parser::padding());
  s.assign(text);
  return s;
}

response_info parse(unsigned status, std::string_view text, std::size_t limit = k_limit) {
  response_parser parser(limit);
  std::string body = padded(text);
  return parser.parse(status, body);
}

constexpr std::string_view k_success = R"({
  "id": "2818e386-8dec-2562-9ede-5b8a0fbbdc71",
  "name": "Acme EMEA",
  "created_at": "2024-01-02T03:04:05.000Z",
  "updated_at": "2026-11-26T20:41:07.000Z",
  "licenses": [{"id": "lic-1", "name": "Wired"}],
  "pricing_plan": null,
  "remote_data": {"id": "remote-id", "name": "remote name", "session_expiry": 720,
                  "allow_mist": true, "orggroup_ids": [], "msp_id": null,
                  "created_time": 1.7e9}
})";

TEST(ResponseTest, SuccessBody) {
  const response_info r = parse(200, k_success);
  EXPECT_TRUE(r.json_valid);
  EXPECT_EQ(r.id, "2818e386-8dec-2562-9ede-5b8a0fbbdc71");
  EXPECT_EQ(r.name, "Acme EMEA");
  EXPECT_EQ(r.updated_at, "2026-11-26T20:41:07.000Z");
  EXPECT_EQ(r.status_code, 0);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.message, "");
  EXPECT_FALSE(r.remote);
}

// The engine parses every answer into one response_info: nothing of an
// earlier answer may show through a later one.
TEST(ResponseTest, ReusedInfoKeepsNothingOfTheLastAnswer) {
  response_parser parser(k_limit);
  response_info info;
  std::string ok = padded(R"({"id":"2818e386-8dec-2562-9ede-5b8a0fbbdc71","name":"Acme","updated_at":"2026-11-26T20:41:07.123Z"})");
  parser.parse(200, ok, info);
  ASSERT_TRUE(info.json_valid);
  EXPECT_EQ(info.name, "Acme");

  std::string error = padded(R"({"statusCode":422,"error":"Unprocessable Entity","message":"Email is invalid","truto_is_remote_error":true})");
  parser.parse(422, error, info);
  ASSERT_TRUE(info.json_valid);
  EXPECT_EQ(info.id, "");
  EXPECT_EQ(info.name, "");
  EXPECT_EQ(info.updated_at, "");
  EXPECT_EQ(info.status_code, 422);
  EXPECT_EQ(info.message, "Email is invalid");
  EXPECT_TRUE(info.remote);

  std::string broken = padded(R"({"id":"x", "name":)");
  parser.parse(200, broken, info);
  EXPECT_FALSE(info.json_valid);
  EXPECT_EQ(info.status_code, 0);
  EXPECT_EQ(info.message, "");
  EXPECT_FALSE(info.remote);

  // Half-read: the id was taken before the document turned out broken.
  std::string half = padded(R"({"id":"abc","name":"n" "x"})");
  parser.parse(200, half, info);
  EXPECT_FALSE(info.json_valid);
  EXPECT_EQ(info.id, "");
  EXPECT_EQ(info.name, "");
}

TEST(ResponseTest, AnyTwoHundredIsASuccess) {
  EXPECT_EQ(parse(201, R"({"id":"a"})").id, "a");
  EXPECT_EQ(parse(299, R"({"id":"a"})").id, "a");
  EXPECT_EQ(parse(300, R"({"id":"a"})").id, "");
  EXPECT_EQ(parse(199, R"({"id":"a"})").id, "");
}

TEST(ResponseTest, NumericIdIsTakenAsText) {
  EXPECT_EQ(parse(200, R"({"id":12345})").id, "12345");
  EXPECT_EQ(parse(200, R"({"id": -1.5e3 , "name":"n"})").id, "-1.5e3");
  EXPECT_EQ(parse(200, R"({"id":123456789012345678901234567890})").id,
            "123456789012345678901234567890");
}

TEST(ResponseTest, TrutoErrorBody) {
  const response_info r =
      parse(422, R"({"statusCode":422,"error":"Unprocessable Entity","message":"Email is invalid"})");
  EXPECT_TRUE(r.json_valid);
  EXPECT_EQ(r.status_code, 422);
  EXPECT_EQ(r.error, "Unprocessable Entity");
  EXPECT_EQ(r.message, "Email is invalid");
  EXPECT_FALSE(r.remote);
  EXPECT_EQ(r.id, "");
}

TEST(ResponseTest, ErrorBodyOfASuccessIsNotTaken) {
  const response_info r = parse(200, R"({"statusCode":422,"message":"m","id":"x"})");
  EXPECT_TRUE(r.json_valid);
  EXPECT_EQ(r.status_code, 0);
  EXPECT_EQ(r.message, "");
  EXPECT_EQ(r.id, "x");
}

TEST(ResponseTest, RemoteErrorTakesRawResponseDetail) {
  // raw_response comes before the flag that says it is remote.
  const response_info r = parse(404, R"({"statusCode":404,"error":"Not Found",
      "raw_response":{"code":404,"detail":"Organization not found","extra":[1,{"a":"b"}]},
      "truto_is_remote_error":true,"truto_error_insight":{"hint":"check the id"}})");
  EXPECT_TRUE(r.json_valid);
  EXPECT_EQ(r.status_code, 404);
  EXPECT_EQ(r.error, "Not Found");
  EXPECT_TRUE(r.remote);
  EXPECT_EQ(r.message, "Organization not found");
}

TEST(ResponseTest, RemoteErrorKeepsItsOwnMessage) {
  const response_info r = parse(422, R"({"statusCode":422,"message":"Truto says",
      "truto_is_remote_error":true,"raw_response":{"detail":"remote says"}})");
  EXPECT_TRUE(r.remote);
  EXPECT_EQ(r.message, "Truto says");
}

TEST(ResponseTest, DetailIsUsedOnlyForRemoteErrorsAndOnlyWhenAString) {
  EXPECT_EQ(parse(422, R"({"statusCode":422,"raw_response":{"detail":"d"}})").message, "");
  EXPECT_EQ(parse(422, R"({"truto_is_remote_error":false,"raw_response":{"detail":"d"}})").message,
            "");
  const response_info r =
      parse(400, R"({"truto_is_remote_error":true,"raw_response":{"detail":["d"]}})");
  EXPECT_TRUE(r.json_valid);
  EXPECT_TRUE(r.remote);
  EXPECT_EQ(r.message, "");
  const response_info text = parse(502, R"({"truto_is_remote_error":true,"raw_response":"<html>"})");
  EXPECT_TRUE(text.json_valid);
  EXPECT_EQ(text.message, "");
}

TEST(ResponseTest, SuccessBodyThatIsNotJson) {
  const response_info r = parse(200, "<html><body>Bad gateway</body></html>");
  EXPECT_FALSE(r.json_valid);
  EXPECT_EQ(r.id, "");
  EXPECT_FALSE(parse(200, "OK").json_valid);
}

TEST(ResponseTest, EmptyAndBlankBodies) {
  EXPECT_FALSE(parse(200, "").json_valid);
  EXPECT_FALSE(parse(500, "").json_valid);
  EXPECT_FALSE(parse(200, "   \r\n").json_valid);
}

TEST(ResponseTest, OnlyAnObjectIsValid) {
  for (std::string_view body : {"[]", "[{\"id\":\"x\"}]", "\"id\"", "42", "null", "true", "false"}) {
    EXPECT_FALSE(parse(200, body).json_valid) << body;
  }
  EXPECT_TRUE(parse(200, "{}").json_valid);
  EXPECT_TRUE(parse(200, " \n{ } \n").json_valid);
}

TEST(ResponseTest, FieldsInAnyOrderWithUnknownFields) {
  const response_info r = parse(200, R"({"zzz":1,"updated_at":"u","unknown":{"id":"no"},
      "name":"n","more":[true,false,null,-0.5e-3],"id":"i","last":"x"})");
  EXPECT_TRUE(r.json_valid);
  EXPECT_EQ(r.id, "i");
  EXPECT_EQ(r.name, "n");
  EXPECT_EQ(r.updated_at, "u");

  const response_info e = parse(409, R"({"message":"m","x":{},"error":"Conflict","statusCode":409})");
  EXPECT_EQ(e.status_code, 409);
  EXPECT_EQ(e.error, "Conflict");
  EXPECT_EQ(e.message, "m");
}

TEST(ResponseTest, NestedObjectsBeforeTheWantedKeys) {
  const response_info r = parse(200, R"({"remote_data":{"id":"inner","name":"inner",
      "deep":[{"id":"x"},[1,2,{"name":"n","updated_at":"no"}],{"a":{"b":{"c":[[]]}}}]},
      "licenses":[{"id":"l","name":"l"}],"id":"outer","name":"Outer","updated_at":"t"})");
  EXPECT_TRUE(r.json_valid);
  EXPECT_EQ(r.id, "outer");
  EXPECT_EQ(r.name, "Outer");
  EXPECT_EQ(r.updated_at, "t");
}

TEST(ResponseTest, StringsWithEscapes) {
  const response_info r =
      parse(200, R"({"name":"a\"b\\c\/d\n\t\u00e9\u20ac\ud83d\ude00","\u0069d":"escaped key"})");
  EXPECT_TRUE(r.json_valid);
  EXPECT_EQ(r.name, "a\"b\\c/d\n\t\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  EXPECT_EQ(r.id, "escaped key");
}

TEST(ResponseTest, WrongTypesAreLeftEmpty) {
  const response_info r = parse(200, R"({"id":{"a":1},"name":["x"],"updated_at":null})");
  EXPECT_TRUE(r.json_valid);
  EXPECT_EQ(r.id, "");
  EXPECT_EQ(r.name, "");
  EXPECT_EQ(r.updated_at, "");

  const response_info e =
      parse(422, R"({"statusCode":"422","error":5,"message":false,"truto_is_remote_error":"true"})");
  EXPECT_TRUE(e.json_valid);
  EXPECT_EQ(e.status_code, 0);
  EXPECT_EQ(e.error, "");
  EXPECT_EQ(e.message, "");
  EXPECT_FALSE(e.remote);

  EXPECT_EQ(parse(422, R"({"statusCode":422.0})").status_code, 0);
  EXPECT_EQ(parse(422, R"({"statusCode":99999999999})").status_code, 0);
  EXPECT_TRUE(parse(422, R"({"statusCode":99999999999})").json_valid);
}

TEST(ResponseTest, StringsAreCappedOnACharacterBoundary) {
  const std::string ascii(2000, 'a');
  EXPECT_EQ(parse(200, R"({"name":")" + ascii + R"("})").name, std::string(1024, 'a'));

  std::string euros;  // 3-byte characters: 1024 is not a multiple of 3
  for (int i = 0; i < 400; ++i) euros += "\xE2\x82\xAC";
  const std::string name = parse(200, R"({"name":")" + euros + R"("})").name;
  EXPECT_EQ(name.size(), 1023U);
  EXPECT_EQ(name, euros.substr(0, 1023));

  const std::string exact(1024, 'b');
  EXPECT_EQ(parse(422, R"({"message":")" + exact + R"("})").message, exact);
}

TEST(ResponseTest, BodyOverTheLimit) {
  const std::string body = R"({"id":"abc"})";  // 12 bytes
  EXPECT_TRUE(parse(200, body, body.size()).json_valid);
  EXPECT_FALSE(parse(200, body, body.size() - 1).json_valid);
  EXPECT_FALSE(parse(200, body, 0).json_valid);
  // A body larger than the limit with the rest of the object in whitespace.
  EXPECT_FALSE(parse(200, body + std::string(100, ' '), 64).json_valid);
}

TEST(ResponseTest, EveryTruncationIsInvalid) {
  const std::string full(k_success);
  response_parser parser(k_limit);
  for (std::size_t n = 0; n < full.size(); ++n) {
    std::string body = padded(full.substr(0, n));
    const response_info r = parser.parse(200, body);
    EXPECT_FALSE(r.json_valid) << "prefix of " << n << " bytes";
    EXPECT_EQ(r.id, "") << n;
  }
  std::string body = padded(full);
  EXPECT_TRUE(parser.parse(200, body).json_valid);
}

TEST(ResponseTest, TrailingGarbage) {
  EXPECT_TRUE(parse(200, "{\"id\":\"x\"}  \r\n\t").json_valid);
  const std::initializer_list<std::string_view> bodies = {
      R"({"id":"x"} x)", R"({"id":"x"}})",  R"({"id":"x"}{})",    R"({"id":"x"},)",
      R"({"id":"x"}])",  R"({"id":"x"} "y")", R"({"id":"x"} 1)", "{\"id\":\"x\"}\0"sv};
  for (std::string_view body : bodies) {
    const response_info r = parse(200, body);
    EXPECT_FALSE(r.json_valid) << body;
    EXPECT_EQ(r.id, "") << body;
  }
}

TEST(ResponseTest, InvalidValuesInSkippedMembers) {
  for (std::string_view body :
       {R"({"id":"x","other":tru})", R"({"other":[1,2,],"id":"x"})", R"({"o":01})",
        R"({"o":"\x"})", R"({"o":nul})", R"({"o":1.})", R"({"o":-})", R"({"o":.5})",
        R"({"o":+1})", R"({"o":[1 2]})", R"({"o":{"a" 1}})", R"({"o":{"a":1,}})",
        R"({"o":{1:2}})", R"({"o":'x'})", R"({"o":truex})", R"({"id":"x",})", R"({"id" "x"})",
        R"({"id":"x" "name":"y"})", R"({"a":[}]})", R"({"a":{]})", R"({,})", R"({"o":"\ud800x"})",
        "{\"o\":\"tab\there\"}"}) {
    EXPECT_FALSE(parse(200, body).json_valid) << body;
    EXPECT_FALSE(parse(422, body).json_valid) << body;
  }
}

TEST(ResponseTest, InvalidUtf8) {
  EXPECT_FALSE(parse(200, "{\"name\":\"\xFF\"}").json_valid);
  EXPECT_FALSE(parse(200, "{\"name\":\"\xC0\x80\"}").json_valid);     // overlong
  EXPECT_FALSE(parse(200, "{\"name\":\"\xED\xA0\x80\"}").json_valid);  // surrogate
  EXPECT_FALSE(parse(200, "{\"name\":\"\xE2\x82\"}").json_valid);      // truncated
  EXPECT_FALSE(parse(200, "{\"x\":1}\xFF").json_valid);
}

TEST(ResponseTest, NestingDepthIsBounded) {
  const auto nested = [](int depth) {
    return R"({"a":)" + std::string(static_cast<std::size_t>(depth), '[') +
           std::string(static_cast<std::size_t>(depth), ']') + R"(,"id":"x"})";
  };
  EXPECT_TRUE(parse(200, nested(100)).json_valid);
  EXPECT_EQ(parse(200, nested(100)).id, "x");
  EXPECT_FALSE(parse(200, nested(300)).json_valid);
  EXPECT_FALSE(parse(200, nested(100000)).json_valid);
  EXPECT_FALSE(parse(200, std::string(100000, '{')).json_valid);
}

TEST(ResponseTest, GrowsABufferWithoutPadding) {
  response_parser parser(k_limit);
  std::string body = R"({"id":"x"})";
  body.shrink_to_fit();
  const response_info r = parser.parse(200, body);
  EXPECT_TRUE(r.json_valid);
  EXPECT_EQ(r.id, "x");
  EXPECT_EQ(body, R"({"id":"x"})");
  EXPECT_GE(body.capacity(), body.size() + response_parser::padding());
  EXPECT_EQ(response_parser::padding(), 64U);
}

TEST(ResponseTest, ParserIsReusedAcrossSizes) {
  response_parser parser(k_limit);
  std::string big = R"({"pad":")" + std::string(200000, 'p') + R"(","id":"big"})";
  big.reserve(big.size() + response_parser::padding());
  std::string small = padded(R"({"id":"small"})");
  EXPECT_EQ(parser.parse(200, small).id, "small");
  EXPECT_EQ(parser.parse(200, big).id, "big");
  EXPECT_EQ(parser.parse(200, small).id, "small");
  std::string broken = padded(R"({"id":"x")");
  EXPECT_FALSE(parser.parse(200, broken).json_valid);
  EXPECT_EQ(parser.parse(200, small).id, "small");
}

TEST(ResponseTest, RandomBytesNeverCrash) {
  response_parser parser(4096);
  std::mt19937_64 rng(20261126);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> length(0, 600);
  // Bytes that JSON cares about, so the random inputs reach deep into the parser.
  constexpr std::string_view k_json_bytes = "{}[]\":,\\ntrue false null 0123456789-+.eE\x80\xC3\xA9";
  int valid = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string body;
    const std::size_t n = length(rng);
    body.reserve(n + response_parser::padding());
    const bool jsonish = i % 2 == 0;
    for (std::size_t k = 0; k < n; ++k) {
      body.push_back(jsonish ? k_json_bytes[static_cast<std::size_t>(byte(rng)) % k_json_bytes.size()]
                             : static_cast<char>(byte(rng)));
    }
    if (i % 4 == 0 && !body.empty()) body.front() = '{';
    const response_info r = parser.parse(static_cast<unsigned>(i % 3 == 0 ? 200 : 422), body);
    valid += r.json_valid ? 1 : 0;
    EXPECT_LE(r.id.size(), response_parser::max_string_bytes);
    EXPECT_LE(r.message.size(), response_parser::max_string_bytes);
  }
  RecordProperty("valid", valid);
  std::string ok = padded(R"({"id":"after"})");
  EXPECT_EQ(parser.parse(200, ok).id, "after");
}

TEST(ResponseTest, MutatedBodiesNeverCrash) {
  response_parser parser(k_limit);
  std::mt19937_64 rng(42);
  const std::string base(k_success);  // a body close to real ones, mutated a few bytes at a time
  std::uniform_int_distribution<int> byte(0, 255);
  constexpr std::string_view k_structural = "{}[]\",:\\";
  for (int i = 0; i < 4000; ++i) {
    std::string body = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const std::size_t at = rng() % body.size();
      switch (rng() % 4) {
        case 0: body[at] = static_cast<char>(byte(rng)); break;
        case 1: body[at] = k_structural[rng() % k_structural.size()]; break;
        case 2: body.erase(at, 1 + rng() % 8); break;
        default: body.insert(at, 1, k_structural[rng() % k_structural.size()]); break;
      }
    }
    if (rng() % 8 == 0) body.resize(rng() % (body.size() + 1));
    body.reserve(body.size() + response_parser::padding());
    const response_info r = parser.parse(i % 2 ? 200 : 404, body);
    if (!r.json_valid) {
      EXPECT_EQ(r.id, "");
    }
  }
}

}  // namespace

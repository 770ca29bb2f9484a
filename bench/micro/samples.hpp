/// Realistic inputs shared by the micro-benchmarks: job lines as
/// scripts/generate-jobs.sh writes them, the DESIGN.md §5 example, and the
/// API's success and error bodies (DESIGN.md §2).
#pragma once

#include <string_view>

namespace orgpatch::bench {

/// A line of scripts/generate-jobs.sh: id, account, a name and remote_data.
inline constexpr std::string_view k_typical_line =
    R"({"id":"2818e386-8dec-4562-a9ed-5b8a0fbbdc71","integrated_account_id":"62f44730-dd91-461e-bd6a-aedd9e0ad79d","body":{"name":"Org 17","remote_data":{"session_expiry":77}}})";

/// The DESIGN.md §5 example: a query with an array and a nested object, and a key.
inline constexpr std::string_view k_query_line =
    R"({"id":"2818e386-8dec-2562-9ede-5b8a0fbbdc71","integrated_account_id":"62f44730-dd91-461e-bd6a-aedd9e0ad79d","body":{"name":"Acme EMEA","remote_data":{"session_expiry":720}},"query":{"truto_exclude_fields":["licenses"],"remote_query":{"foo":"bar"}},"key":"acme-emea-1"})";

/// A typical line whose account is not a UUID: rejected after the whole line is scanned.
inline constexpr std::string_view k_invalid_line =
    R"({"id":"2818e386-8dec-4562-a9ed-5b8a0fbbdc71","integrated_account_id":"acct-17","body":{"name":"Org 17","remote_data":{"session_expiry":77}}})";

/// The query of the DESIGN.md §2 URL example.
inline constexpr std::string_view k_query_json =
    R"({"truto_exclude_fields":["id","name"],"remote_query":{"foo":"bar","nested":{"a":1}}})";

/// What nginx answers in bench/wire.sh: a 200 of the unified model.
inline constexpr std::string_view k_ok_body =
    R"({"id":"2818e386-8dec-2562-9ede-5b8a0fbbdc71","name":"Acme","updated_at":"2026-11-26T20:41:07.123Z","licenses":[],"remote_data":{}})";

/// A remote validation error as Truto relays it.
inline constexpr std::string_view k_error_body =
    R"({"statusCode":422,"error":"Unprocessable Entity","message":"Email is invalid","truto_is_remote_error":true,"raw_response":{"detail":"Email is invalid"}})";

}  // namespace orgpatch::bench

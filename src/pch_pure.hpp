// Precompiled header of orgpatch_pure: heavy, stable headers, no Asio/Beast.
#pragma once
#include <boost/json.hpp>
#include <boost/url.hpp>
#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

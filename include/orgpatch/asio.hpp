/// Namespace aliases and the stream types of orgpatchd, with
/// `as_tuple(use_awaitable)` as their default completion token, so that every
/// I/O step reads `auto [ec, n] = co_await s.async_read_some(...)`.
///
/// Include this header only where Asio/Beast are really used: pure cores
/// (job, query, response, rate limiter, retry) do not need it.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>

namespace orgpatch {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;

/// The default completion token: coroutine, error codes returned as values.
using use_tuple_t = net::as_tuple_t<net::use_awaitable_t<>>;
inline constexpr use_tuple_t use_tuple{};

using tcp = net::ip::tcp;
using tcp_resolver = use_tuple_t::as_default_on_t<tcp::resolver>;
using tcp_acceptor = use_tuple_t::as_default_on_t<tcp::acceptor>;
using tcp_socket = use_tuple_t::as_default_on_t<tcp::socket>;
using steady_timer = use_tuple_t::as_default_on_t<net::steady_timer>;

/// A TCP stream with Beast's per-operation expiry, and its TLS wrapper.
using tcp_stream = beast::basic_stream<tcp, net::any_io_executor, beast::unlimited_rate_policy>;
using tls_stream = ssl::stream<tcp_stream>;

}  // namespace orgpatch

#include "orgpatch/http_reader.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <optional>

namespace orgpatch {

namespace http = boost::beast::http;
using boost::system::error_code;

namespace {

/// Beast's parser with callbacks that keep only what orgpatchd uses, straight
/// into the caller's `http_response`.
class parser final : public http::basic_parser<false> {
 public:
  parser(http_response& out, std::size_t max_body, std::size_t max_header, std::size_t padding)
      : out_(out), padding_(padding) {
    body_limit(max_body);
    header_limit(static_cast<std::uint32_t>(max_header));
    eager(true);
  }

 private:
  void on_request_impl(http::verb, boost::beast::string_view, boost::beast::string_view, int, error_code&) override {}

  void on_response_impl(int code, boost::beast::string_view, int, error_code& ec) override {
    // Beast takes any three digits; RFC 9110 §15 allows 100 to 599. Anything
    // else is a malformed answer (retried), not a status to classify.
    if (code < 100 || code > 599) {
      ec = http::error::bad_status;
      return;
    }
    out_.status = static_cast<unsigned>(code);
  }

  void on_field_impl(http::field name, boost::beast::string_view name_string, boost::beast::string_view value,
                     error_code& ec) override {
    // The byte limit alone would let tens of thousands of tiny fields through.
    if (++fields_ > http_reader::k_max_fields) {
      ec = http::error::header_limit;
      return;
    }
    if (name == http::field::retry_after) out_.retry_after.assign(value.data(), value.size());
    else if (name == http::field::location)
      out_.location.assign(value.data(), std::min<std::size_t>(value.size(), 512));
    else if (name != http::field::unknown) return;
    else if (boost::beast::iequals(name_string, "ratelimit-remaining"))
      out_.ratelimit_remaining.assign(value.data(), value.size());
    else if (boost::beast::iequals(name_string, "ratelimit-reset"))
      out_.ratelimit_reset.assign(value.data(), value.size());
  }

  void on_header_impl(error_code&) override {
    out_.chunked = chunked();
    out_.keep_alive = keep_alive();
  }

  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
    // The length was checked against body_limit before this call.
    if (length) out_.body.reserve(static_cast<std::size_t>(*length) + padding_);
  }

  std::size_t on_body_impl(boost::beast::string_view s, error_code&) override {
    out_.body.append(s.data(), s.size());
    return s.size();
  }

  void on_chunk_header_impl(std::uint64_t, boost::beast::string_view, error_code&) override {}

  std::size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view s, error_code&) override {
    out_.body.append(s.data(), s.size());
    return s.size();
  }

  void on_finish_impl(error_code&) override {
    if (out_.body.capacity() < out_.body.size() + padding_) out_.body.reserve(out_.body.size() + padding_);
  }

  http_response& out_;
  std::size_t padding_;
  unsigned fields_ = 0;
};

}  // namespace

struct http_reader::impl {
  impl(std::size_t body, std::size_t header, std::size_t pad) : max_body(body), max_header(header), padding(pad) {}

  std::size_t max_body;
  std::size_t max_header;
  std::size_t padding;
  http_response* out = nullptr;
  std::optional<parser> p;  // re-made in place for each message: no allocation
  unsigned interim = 0;
  bool got_some = false;
  std::size_t header_used = 0;  // bytes of the current message's header Beast has taken

  void next_message() {
    out->status = 0;
    out->body.clear();
    out->retry_after.clear();
    out->ratelimit_remaining.clear();
    out->ratelimit_reset.clear();
    out->location.clear();
    out->chunked = false;
    out->keep_alive = true;
    header_used = 0;
    p.emplace(*out, max_body, max_header, padding);
  }
};

http_reader::http_reader(std::size_t max_body, std::size_t max_header, std::size_t body_padding)
    : impl_(std::make_unique<impl>(max_body, max_header, body_padding)) {}

http_reader::~http_reader() = default;

void http_reader::start(http_response& out) {
  impl_->out = &out;
  impl_->interim = 0;
  impl_->got_some = false;
  impl_->next_message();
  state_ = state::need_more;
  error_ = {};
}

bool http_reader::got_some() const noexcept { return impl_->got_some; }

bool http_reader::header_done() const noexcept { return impl_->p && impl_->p->is_header_done(); }

std::size_t http_reader::put(std::string_view data) {
  auto& s = *impl_;
  std::size_t used = 0;
  while (state_ == state::need_more && used < data.size()) {
    // Beast holds the start line and then the fields each to its header limit
    // when they come in one piece (so up to twice the limit in all), but the
    // header to the limit when it comes in pieces. Offering no more than what is
    // left of the limit until the header is complete makes `max_header` hold
    // for the whole header, whatever pieces the bytes arrive in.
    const bool in_header = !s.p->is_header_done();
    const std::size_t room = s.max_header - s.header_used;
    const std::size_t offer = in_header ? std::min(data.size() - used, room) : data.size() - used;
    error_code ec;
    const std::size_t n = s.p->put(boost::asio::const_buffer(data.data() + used, offer), ec);
    used += n;
    if (in_header && !s.p->is_header_done()) s.header_used += n;
    if (n > 0 || s.p->got_some()) s.got_some = true;
    if (ec == http::error::need_more) {
      if (!in_header || offer < room) break;
      // Cut short at the limit: the rest is there once the header is complete;
      // a header that has not ended within the room left can only be longer.
      if (s.p->is_header_done()) continue;
      ec = http::error::header_limit;
    }
    if (ec) {
      state_ = state::failed;
      error_ = ec;
      break;
    }
    if (!s.p->is_done()) {
      // A body to the end of the stream: everything offered was taken.
      if (n == 0) break;
      continue;
    }
    const unsigned status = s.out->status;
    if (status >= 100 && status < 200 && status != 101) {
      // 100 Continue, 103 Early Hints…: the real answer follows.
      if (++s.interim > 8) {
        state_ = state::failed;
        error_ = http::error::bad_status;
        break;
      }
      s.next_message();
      continue;
    }
    state_ = state::done;
  }
  return used;
}

void http_reader::put_eof() {
  if (state_ != state::need_more) return;
  auto& s = *impl_;
  error_code ec;
  if (!s.p->got_some()) ec = http::error::end_of_stream;
  else s.p->put_eof(ec);
  if (ec || !s.p->is_done()) {
    state_ = state::failed;
    error_ = ec ? ec : error_code(http::error::partial_message);
    return;
  }
  state_ = state::done;
}

}  // namespace orgpatch

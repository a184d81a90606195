#include "request_reader.hpp"

#include <strings.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include <fmt/format.h>

namespace ordinaut_server {

namespace {

// RFC 9110 token characters (method and field names).
bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return is_tchar(static_cast<unsigned char>(c)); });
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls f(item) for each comma-separated, OWS-trimmed, non-empty list item.
template <typename F>
void for_each_item(std::string_view list, F&& f) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::string_view item = trim_ows(list.substr(0, comma));
    if (!item.empty()) f(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

std::string limit_details(std::size_t limit, std::string_view what) {
  return fmt::format(R"({{"limit":{},"field":"{}"}})", limit, what);
}

}  // namespace

bool RequestReader::fail(int status, std::string_view code, std::string message, std::string details_json) {
  phase_ = Phase::failed;
  error_.status = status;
  error_.code = code;
  error_.message = std::move(message);
  error_.details_json = std::move(details_json);
  return false;
}

void RequestReader::reset() {
  phase_ = Phase::idle;
  head_.clear();
  line_start_ = 0;
  header_lines_ = 0;
  header_bytes_ = 0;
  request_line_done_ = false;
  keep_alive_ = true;
  http10_ = false;
  expect_continue_ = false;
  body_started_ = false;
  chunked_ = false;
  remaining_ = 0;
  chunk_state_ = ChunkState::size;
  chunk_line_.clear();
  trailer_bytes_ = 0;
}

void RequestReader::trim() {
  if (head_.capacity() > 1024) std::string().swap(head_);
  if (chunk_line_.capacity() > 64) std::string().swap(chunk_line_);
}

ordinaut::Request RequestReader::take() {
  ordinaut::Request out = std::move(request_);
  request_ = ordinaut::Request{};
  reset();
  return out;
}

std::size_t RequestReader::feed(const char* data, std::size_t size) {
  std::size_t used = 0;
  if (phase_ == Phase::idle || phase_ == Phase::head) used += feed_head(data, size);
  if (phase_ == Phase::body && used < size) used += feed_body(data + used, size - used);
  return used;
}

std::size_t RequestReader::feed_head(const char* data, std::size_t size) {
  std::size_t i = 0;
  while (i < size) {
    const char* nl = static_cast<const char*>(std::memchr(data + i, '\n', size - i));
    const std::size_t take = nl != nullptr ? static_cast<std::size_t>(nl - (data + i)) + 1 : size - i;
    // The line's length so far, without its line end; a pending '\r' may still
    // turn out to be part of the CRLF, hence the + 1 for incomplete lines.
    const std::size_t line_len = head_.size() - line_start_ + take - (nl != nullptr ? 1 : 0);
    const std::size_t allowance = nl != nullptr ? 0 : 1;
    std::size_t content_len = line_len;
    if (nl != nullptr && line_len > 0) {
      const char last = take >= 2 ? data[i + take - 2] : head_.back();
      if (last == '\r') --content_len;
    }
    if (!request_line_done_) {
      if (content_len > kMaxRequestLine + allowance) {
        fail(414, "uri_too_long", fmt::format("the request line is longer than {} bytes", kMaxRequestLine),
             limit_details(kMaxRequestLine, "request_line"));
        return i + take;
      }
    } else {
      if (content_len > kMaxHeaderLine + allowance) {
        fail(431, "header_fields_too_large", fmt::format("a header line is longer than {} bytes", kMaxHeaderLine),
             limit_details(kMaxHeaderLine, "header_line"));
        return i + take;
      }
      if (header_bytes_ + content_len > kMaxHeaderBytes + allowance) {
        fail(431, "header_fields_too_large", fmt::format("the header lines add up to more than {} bytes", kMaxHeaderBytes),
             limit_details(kMaxHeaderBytes, "header_bytes"));
        return i + take;
      }
    }
    phase_ = Phase::head;
    head_.append(data + i, take);
    i += take;
    if (nl == nullptr) break;
    if (!request_line_done_) {
      if (content_len == 0) {  // empty lines before a request line are ignored (RFC 9112 2.2)
        head_.clear();
        line_start_ = 0;
        phase_ = Phase::idle;
        continue;
      }
      request_line_done_ = true;
    } else if (content_len == 0) {
      parse_head();
      return i;
    } else {
      if (++header_lines_ > kMaxHeaders) {
        fail(431, "header_fields_too_large", fmt::format("more than {} header fields", kMaxHeaders),
             limit_details(kMaxHeaders, "header_count"));
        return i;
      }
      header_bytes_ += content_len;
    }
    line_start_ = head_.size();
  }
  return i;
}

bool RequestReader::parse_head() {
  std::string_view head = head_;
  // Lines of the head, without their line ends (the last one is the blank line).
  auto next_line = [&head]() -> std::string_view {
    const auto nl = head.find('\n');
    std::string_view line = head.substr(0, nl);
    head.remove_prefix(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  };
  auto bad = [this](std::string message, std::string_view reason) {
    return fail(400, "bad_request", std::move(message), fmt::format(R"({{"reason":"{}"}})", reason));
  };

  // Request line: method SP request-target SP HTTP-version.
  const std::string_view line = next_line();
  if (line.find('\r') != std::string_view::npos) return bad("the request line holds a bare CR", "bare_cr");
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return bad("the request line must be: METHOD SP TARGET SP HTTP-VERSION", "request_line");
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method)) return bad("the method is not a token", "method");
  if (target.empty() || std::any_of(target.begin(), target.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u == 0x7f;
      })) {
    return bad("the request target is empty or holds control characters", "target");
  }
  if (version == "HTTP/1.1") {
    http10_ = false;
  } else if (version == "HTTP/1.0") {
    http10_ = true;
  } else if (version.size() == 8 && version.starts_with("HTTP/") && std::isdigit(static_cast<unsigned char>(version[5])) &&
             version[6] == '.' && std::isdigit(static_cast<unsigned char>(version[7]))) {
    return fail(505, "http_version_not_supported", fmt::format("HTTP version {} is not supported; use HTTP/1.1", version),
                R"({"supported":["HTTP/1.0","HTTP/1.1"]})");
  } else {
    return bad("the request line does not end with an HTTP version", "version");
  }
  // origin-form, absolute-form (path taken) or "*" for OPTIONS.
  std::string_view path_and_query = target;
  if (target.front() != '/') {
    const auto scheme = target.find("://");
    if (scheme != std::string_view::npos && (iequals(target.substr(0, scheme), "http") ||
                                             iequals(target.substr(0, scheme), "https"))) {
      const auto slash = target.find('/', scheme + 3);
      path_and_query = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    } else if (!(target == "*" && method == "OPTIONS")) {
      return bad("the request target must be an absolute path", "target");
    }
  }
  request_.method.assign(method);
  const auto q = path_and_query.find('?');
  request_.path.assign(path_and_query.substr(0, q));
  if (q != std::string_view::npos) request_.query_string.assign(path_and_query.substr(q + 1));

  // Header fields.
  int hosts = 0;
  int lengths = 0;
  bool has_te = false;
  bool te_chunked_only = true;
  int te_items = 0;
  bool close = false;
  bool keep_alive_token = false;
  std::uint64_t content_length = 0;
  for (std::string_view field = next_line(); !field.empty(); field = next_line()) {
    if (field.front() == ' ' || field.front() == '\t') {
      return bad("obsolete line folding (a header line starting with whitespace) is not accepted", "obs_fold");
    }
    const auto colon = field.find(':');
    if (colon == std::string_view::npos) return bad("a header line has no colon", "header_line");
    const std::string_view name = field.substr(0, colon);
    if (!is_token(name)) {
      return bad("a header name is empty or holds characters other than a token's (whitespace before the colon?)",
                 "header_name");
    }
    const std::string_view value = trim_ows(field.substr(colon + 1));
    if (std::any_of(value.begin(), value.end(), [](char c) {
          const auto u = static_cast<unsigned char>(c);
          return (u < 0x20 && u != '\t') || u == 0x7f;
        })) {
      return bad(fmt::format("header {} holds control characters", name), "header_value");
    }
    if (iequals(name, "Content-Length")) {
      if (++lengths > 1) return bad("more than one Content-Length header", "content_length");
      if (value.empty() || !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return bad("Content-Length must be all digits", "content_length");
      }
      const auto digits = value.find_first_not_of('0');
      const std::string_view significant = digits == std::string_view::npos ? "0" : value.substr(digits);
      if (significant.size() > 19) {
        return fail(413, "payload_too_large", fmt::format("request body exceeds the limit of {} bytes", max_body_),
                    fmt::format(R"({{"limit":{}}})", max_body_));
      }
      content_length = 0;
      for (char c : significant) content_length = content_length * 10 + static_cast<std::uint64_t>(c - '0');
    } else if (iequals(name, "Transfer-Encoding")) {
      has_te = true;
      for_each_item(value, [&](std::string_view item) {
        ++te_items;
        if (!iequals(item, "chunked")) te_chunked_only = false;
      });
    } else if (iequals(name, "Host")) {
      ++hosts;
    } else if (iequals(name, "Connection")) {
      for_each_item(value, [&](std::string_view item) {
        if (iequals(item, "close")) close = true;
        if (iequals(item, "keep-alive")) keep_alive_token = true;
      });
    } else if (iequals(name, "Expect")) {
      if (iequals(value, "100-continue")) expect_continue_ = true;
    }
    request_.headers.add(std::string(name), std::string(value));
  }
  if (hosts > 1) return bad("more than one Host header", "host");
  if (!http10_ && hosts == 0) return bad("HTTP/1.1 requests need a Host header", "host");
  if (has_te && lengths > 0) return bad("Content-Length together with Transfer-Encoding", "content_length");
  if (has_te && (!te_chunked_only || te_items != 1)) {
    return fail(501, "not_implemented", "the only Transfer-Encoding this server accepts is chunked",
                R"({"supported":["chunked"]})");
  }
  if (content_length > max_body_) {
    return fail(413, "payload_too_large", fmt::format("request body exceeds the limit of {} bytes", max_body_),
                fmt::format(R"({{"limit":{}}})", max_body_));
  }
  keep_alive_ = http10_ ? keep_alive_token && !close : !close;
  if (!has_te && content_length == 0) {
    expect_continue_ = false;
    phase_ = Phase::done;
    return true;
  }
  chunked_ = has_te;
  remaining_ = content_length;
  if (http10_) expect_continue_ = false;
  // Room for what is likely to come, not for what a client merely declares.
  if (!chunked_) request_.body.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(content_length, 16 * 1024)));
  phase_ = Phase::body;
  return true;
}

std::size_t RequestReader::feed_body(const char* data, std::size_t size) {
  if (size > 0) body_started_ = true;
  if (chunked_) return feed_chunked(data, size);
  const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size, remaining_));
  request_.body.append(data, n);
  remaining_ -= n;
  if (remaining_ == 0) phase_ = Phase::done;
  return n;
}

std::size_t RequestReader::feed_chunked(const char* data, std::size_t size) {
  auto bad = [this](std::string message) {
    return fail(400, "bad_request", std::move(message), R"({"reason":"chunked_framing"})");
  };
  std::size_t i = 0;
  while (i < size && phase_ == Phase::body) {
    switch (chunk_state_) {
      case ChunkState::size:
      case ChunkState::trailer: {
        const char* nl = static_cast<const char*>(std::memchr(data + i, '\n', size - i));
        const std::size_t take = nl != nullptr ? static_cast<std::size_t>(nl - (data + i)) + 1 : size - i;
        const std::size_t limit = chunk_state_ == ChunkState::size ? kMaxChunkLine : kMaxHeaderLine;
        if (chunk_line_.size() + take > limit + 2) {
          if (chunk_state_ == ChunkState::size) {
            bad(fmt::format("a chunk-size line is longer than {} bytes", kMaxChunkLine));
          } else {
            fail(431, "header_fields_too_large", fmt::format("a trailer line is longer than {} bytes", kMaxHeaderLine),
                 limit_details(kMaxHeaderLine, "trailer_line"));
          }
          return i + take;
        }
        chunk_line_.append(data + i, take);
        i += take;
        if (nl == nullptr) break;
        if (chunk_line_.size() < 2 || chunk_line_[chunk_line_.size() - 2] != '\r') {
          bad("chunk lines must end with CRLF");
          return i;
        }
        std::string_view line(chunk_line_.data(), chunk_line_.size() - 2);
        if (line.find('\r') != std::string_view::npos) {
          bad("a chunk line holds a bare CR");
          return i;
        }
        if (chunk_state_ == ChunkState::trailer) {
          if (line.empty()) {
            phase_ = Phase::done;
          } else {
            trailer_bytes_ += line.size();
            if (trailer_bytes_ > kMaxHeaderBytes) {
              fail(431, "header_fields_too_large",
                   fmt::format("the trailer lines add up to more than {} bytes", kMaxHeaderBytes),
                   limit_details(kMaxHeaderBytes, "trailer_bytes"));
              return i;
            }
          }
          chunk_line_.clear();
          break;
        }
        // chunk-size [ chunk-ext ]
        std::size_t digits = 0;
        std::uint64_t chunk = 0;
        while (digits < line.size() && std::isxdigit(static_cast<unsigned char>(line[digits]))) {
          if (digits == 15) {
            fail(413, "payload_too_large", fmt::format("request body exceeds the limit of {} bytes", max_body_),
                 fmt::format(R"({{"limit":{}}})", max_body_));
            return i;
          }
          const char c = line[digits];
          chunk = chunk * 16 + static_cast<std::uint64_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
          ++digits;
        }
        const std::string_view rest = line.substr(digits);
        if (digits == 0 || (!rest.empty() && rest.front() != ';' && rest.front() != ' ' && rest.front() != '\t')) {
          bad("a chunk does not start with its size in hexadecimal");
          return i;
        }
        chunk_line_.clear();
        if (chunk > max_body_ - std::min<std::uint64_t>(request_.body.size(), max_body_)) {
          fail(413, "payload_too_large", fmt::format("request body exceeds the limit of {} bytes", max_body_),
               fmt::format(R"({{"limit":{}}})", max_body_));
          return i;
        }
        remaining_ = chunk;
        chunk_state_ = chunk == 0 ? ChunkState::trailer : ChunkState::data;
        break;
      }
      case ChunkState::data: {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size - i, remaining_));
        request_.body.append(data + i, n);
        i += n;
        remaining_ -= n;
        if (remaining_ == 0) chunk_state_ = ChunkState::data_crlf;
        break;
      }
      case ChunkState::data_crlf: {
        chunk_line_.push_back(data[i++]);
        if (chunk_line_.size() == 2) {
          if (chunk_line_ != "\r\n") {
            bad("chunk data must be followed by CRLF");
            return i;
          }
          chunk_line_.clear();
          chunk_state_ = ChunkState::size;
        }
        break;
      }
    }
  }
  return i;
}

}  // namespace ordinaut_server

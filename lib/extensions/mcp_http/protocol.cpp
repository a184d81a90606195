#include "protocol.hpp"

#include <algorithm>
#include <cstring>
#include <initializer_list>

#include <fmt/format.h>

namespace ordinaut::mcp_http {

bool supported_version(std::string_view version) {
  return std::find(kProtocolVersions.begin(), kProtocolVersions.end(), version) != kProtocolVersions.end();
}

std::string_view negotiate_version(std::string_view requested) {
  for (std::string_view v : kProtocolVersions) {
    if (v == requested) return v;
  }
  return kProtocolVersions.front();
}

namespace {

bool only_members(const JsonValue& object, std::initializer_list<std::string_view> allowed, std::string& extra) {
  for (const auto& m : object.GetObject()) {
    std::string_view name(m.name.GetString(), m.name.GetStringLength());
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      extra = std::string(name);
      return false;
    }
  }
  return true;
}

}  // namespace

Message classify(const JsonValue& value) {
  Message m;
  m.id = "null";
  if (!value.IsObject()) {
    m.problem = fmt::format("a JSON-RPC message must be an object, got {}", json::type_name(value));
    return m;
  }
  bool has_id = false, id_ok = false;
  if (auto it = value.FindMember("id"); it != value.MemberEnd()) {
    has_id = true;
    // Integers only: 1.5 is not a valid MCP id, and null ids are never allowed.
    if (it->value.IsString() || it->value.IsInt64() || it->value.IsUint64()) {
      id_ok = true;
      m.id = json::dump(it->value);
    }
  }
  auto jsonrpc = value.FindMember("jsonrpc");
  if (jsonrpc == value.MemberEnd() || !jsonrpc->value.IsString() ||
      std::string_view(jsonrpc->value.GetString(), jsonrpc->value.GetStringLength()) != "2.0") {
    m.problem = "member \"jsonrpc\" must be the string \"2.0\"";
    return m;
  }
  std::string extra;
  if (auto method = value.FindMember("method"); method != value.MemberEnd()) {
    if (!method->value.IsString()) {
      m.problem = "member \"method\" must be a string";
      return m;
    }
    m.method.assign(method->value.GetString(), method->value.GetStringLength());
    if (!only_members(value, {"jsonrpc", "id", "method", "params"}, extra)) {
      m.problem = fmt::format("unexpected member \"{}\" in a request", extra);
      return m;
    }
    if (auto params = value.FindMember("params"); params != value.MemberEnd()) {
      if (!params->value.IsObject()) {
        m.problem = fmt::format("member \"params\" must be an object, got {}", json::type_name(params->value));
        return m;
      }
      m.params = &params->value;
    }
    if (has_id && !id_ok) {
      m.problem = fmt::format("member \"id\" must be a string or an integer, got {}",
                              json::type_name(value.FindMember("id")->value));
      return m;
    }
    m.kind = has_id ? MessageKind::request : MessageKind::notification;
    return m;
  }
  if (!only_members(value, {"jsonrpc", "id", "result", "error"}, extra)) {
    m.problem = fmt::format("unexpected member \"{}\" (a message needs \"method\", or \"result\"/\"error\")", extra);
    return m;
  }
  auto result = value.FindMember("result");
  auto error = value.FindMember("error");
  const bool has_result = result != value.MemberEnd(), has_error = error != value.MemberEnd();
  if (!has_result && !has_error) {
    m.problem = "a message needs \"method\" (request or notification) or \"result\"/\"error\" (response)";
    return m;
  }
  if (has_result && has_error) {
    m.problem = "a response must not carry both \"result\" and \"error\"";
    return m;
  }
  if (!id_ok) {
    m.problem = "a response needs a string or integer \"id\"";
    return m;
  }
  if (has_error) {
    const JsonValue& e = error->value;
    if (!e.IsObject() || !e.HasMember("code") || !e["code"].IsInt() || !e.HasMember("message") ||
        !e["message"].IsString()) {
      m.problem = "member \"error\" must be an object with an integer \"code\" and a string \"message\"";
      return m;
    }
    m.error = &e;
  } else {
    m.result = &result->value;
  }
  m.kind = MessageKind::response;
  return m;
}

std::string quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  out += json::escape(text);
  out += '"';
  return out;
}

std::string result_message(std::string_view id, std::string_view result_json) {
  std::string out;
  out.reserve(id.size() + result_json.size() + 36);
  out += R"({"jsonrpc":"2.0","id":)";
  out += id;
  out += R"(,"result":)";
  out += result_json;
  out += '}';
  return out;
}

std::string error_message(std::string_view id, int code, std::string_view message, std::string_view data_json) {
  std::string out = fmt::format(R"({{"jsonrpc":"2.0","id":{},"error":{{"code":{},"message":{})", id, code,
                                quote(message));
  if (!data_json.empty()) {
    out += R"(,"data":)";
    out += data_json;
  }
  out += "}}";
  return out;
}

std::string notification_message(std::string_view method, std::string_view params_json) {
  std::string out = R"({"jsonrpc":"2.0","method":)" + quote(method);
  if (!params_json.empty()) {
    out += R"(,"params":)";
    out += params_json;
  }
  out += '}';
  return out;
}

std::string request_message(std::string_view id, std::string_view method, std::string_view params_json) {
  return fmt::format(R"({{"jsonrpc":"2.0","id":{},"method":{},"params":{}}})", id, quote(method),
                     params_json.empty() ? std::string_view("{}") : params_json);
}

std::optional<int> log_level_rank(std::string_view level) {
  for (std::size_t i = 0; i < kLogLevels.size(); ++i) {
    if (kLogLevels[i] == level) return static_cast<int>(i);
  }
  return std::nullopt;
}

int tool_log_level_rank(std::string_view level) {
  if (auto rank = log_level_rank(level)) return *rank;
  if (level == "warn") return 3;
  if (level == "fatal") return 5;
  if (level == "trace") return 0;
  return 1;
}

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
}

std::string base64url_encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    const unsigned n = (static_cast<unsigned char>(data[i]) << 16) | (static_cast<unsigned char>(data[i + 1]) << 8) |
                       static_cast<unsigned char>(data[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i + 1 == data.size()) {
    const unsigned n = static_cast<unsigned char>(data[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
  } else if (i + 2 == data.size()) {
    const unsigned n = (static_cast<unsigned char>(data[i]) << 16) | (static_cast<unsigned char>(data[i + 1]) << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (char c : text) {
    const char* p = std::strchr(kAlphabet, c);
    if (c == '\0' || p == nullptr) return std::nullopt;
    buffer = (buffer << 6) | static_cast<unsigned>(p - kAlphabet);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  return out;
}

}  // namespace ordinaut::mcp_http

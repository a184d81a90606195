#include "http_rules.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include <ordinaut/resources.hpp>

namespace ordinaut::mcp_http {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

bool accepts(std::string_view header, std::string_view media_type) {
  const std::string wanted = lower(media_type);
  const std::string wanted_any = wanted.substr(0, wanted.find('/')) + "/*";
  std::size_t start = 0;
  while (start <= header.size()) {
    std::size_t comma = header.find(',', start);
    if (comma == std::string_view::npos) comma = header.size();
    std::string_view range = header.substr(start, comma - start);
    start = comma + 1;
    std::size_t semi = range.find(';');
    std::string type = lower(trim(range.substr(0, semi)));
    bool excluded = false;
    while (semi != std::string_view::npos) {
      std::size_t next = range.find(';', semi + 1);
      std::string param = lower(trim(range.substr(semi + 1, next == std::string_view::npos ? std::string_view::npos
                                                                                             : next - semi - 1)));
      if (param.starts_with("q=")) {
        std::string_view q = std::string_view(param).substr(2);
        excluded = !q.empty() && q.find_first_not_of("0.") == std::string_view::npos;  // q=0, q=0.0, ...
      }
      semi = next;
    }
    if (excluded) continue;
    if (type == wanted || type == wanted_any || type == "*/*") return true;
  }
  return false;
}

bool is_json_content_type(std::string_view content_type) {
  return lower(trim(content_type.substr(0, content_type.find(';')))) == "application/json";
}

std::string rebinding_problem(const Request& request, const Config& config) {
  // The host already refused a Host or Origin that its OriginPolicy does not
  // accept (the same rules for every extension); what is left for MCP is that
  // a request must name its Host at all.
  if (config.any_host || !request.header("Host").empty()) return {};
  return "the Host header is missing";
}

Access Access::of(const Request& request, bool enforced) {
  if (!enforced) return Access();
  // Resolved by the host (its ScopeResolver), not read from a header here.
  return Access(true, request.scopes);
}

bool Access::has(std::string_view scope) const {
  return std::find(scopes_.begin(), scopes_.end(), scope) != scopes_.end();
}

bool Access::mcp_allowed() const { return !enforced_ || has(kMcpScope); }

bool Access::matches(std::string_view kind, std::string_view name) const {
  if (!enforced_) return true;
  for (const auto& s : scopes_) {
    if (!s.starts_with(kind)) continue;
    std::string_view pattern = std::string_view(s).substr(kind.size());
    if (pattern == name) return true;
    if (!pattern.empty() && pattern.back() == '*' && name.starts_with(pattern.substr(0, pattern.size() - 1))) {
      return true;
    }
  }
  return false;
}

bool Access::tool_allowed(std::string_view name) const { return matches("tool:", name); }

bool Access::resource_allowed(std::string_view uri) const { return matches("resource:", uri); }

bool Access::prompt_allowed(std::string_view name) const { return matches("prompt:", name); }

bool Access::template_allowed(std::string_view uri_template) const {
  if (!enforced_) return true;
  const std::string_view literal = uri_template.substr(0, uri_template.find('{'));
  for (const auto& s : scopes_) {
    if (!s.starts_with("resource:")) continue;
    std::string_view pattern = std::string_view(s).substr(9);
    if (pattern == uri_template) return true;
    if (!pattern.empty() && pattern.back() == '*') {
      pattern.remove_suffix(1);
      if (literal.starts_with(pattern) || pattern.starts_with(literal)) return true;
    } else if (match_uri_template(uri_template, pattern)) {
      return true;
    }
  }
  return false;
}

}  // namespace ordinaut::mcp_http

// Reading the host's configuration from the environment (environment.hpp).
#include "host/environment.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/strings.hpp"
#include "ordinaut/json.hpp"

namespace ordinaut::detail {

namespace {

Result<bool> parse_bool_env(const char* name, const char* value) {
  std::string v = value;
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v.empty() || v == "0" || v == "false" || v == "no" || v == "off") return false;
  return make_error("invalid_configuration",
                    fmt::format("{}=\"{}\" is not a boolean (use 1/0, true/false, yes/no, on/off)", name, value));
}

}  // namespace

Result<void> apply_environment(HostOptions& options, bool& require_scopes) {
  if (!options.read_environment) return {};
  if (const char* v = std::getenv("ORDINAUT_REQUIRE_SCOPES"); v != nullptr && !options.require_scopes) {
    auto b = parse_bool_env("ORDINAUT_REQUIRE_SCOPES", v);
    if (!b) return b.error();
    require_scopes = *b;
  }
  if (const char* v = std::getenv("ORDINAUT_EXT_ENTRY_GRANTS"); v != nullptr && *v && !options.entry_grants) {
    auto doc = json::parse(v);
    if (!doc) {
      return make_error("invalid_configuration",
                        fmt::format("ORDINAUT_EXT_ENTRY_GRANTS is not valid JSON: {}", doc.error().message));
    }
    if (!doc->IsObject()) {
      return make_error("invalid_configuration",
                        "ORDINAUT_EXT_ENTRY_GRANTS must be a JSON object: {\"extension_id\": [\"ROUTES\", ...]}");
    }
    std::map<std::string, std::vector<std::string>> grants;
    for (auto& m : doc->GetObject()) {
      if (!m.value.IsArray()) {
        return make_error("invalid_configuration",
                          fmt::format("ORDINAUT_EXT_ENTRY_GRANTS: /{}: expected an array of capability names, got {}",
                                      m.name.GetString(), json::type_name(m.value)));
      }
      auto& list = grants[m.name.GetString()];
      for (rapidjson::SizeType i = 0; i < m.value.Size(); ++i) {
        const auto& g = m.value[i];
        if (!g.IsString() || !parse_capability(g.GetString())) {
          return make_error("invalid_configuration",
                            fmt::format("ORDINAUT_EXT_ENTRY_GRANTS: /{}/{}: {} is not a capability (ROUTES, TOOLS, "
                                        "EVENTS_PUB, EVENTS_SUB, BACKGROUND_TASKS, STATIC, RESOURCES, PROMPTS)",
                                        m.name.GetString(), i, json::dump(g)));
        }
        list.emplace_back(g.GetString());
      }
    }
    options.entry_grants = std::move(grants);
  }
  if (const char* v = std::getenv("ORDINAUT_EXT_ENTRY_EAGER"); v != nullptr && *v && !options.entry_eager) {
    auto doc = json::parse(v);
    if (!doc) {
      return make_error("invalid_configuration",
                        fmt::format("ORDINAUT_EXT_ENTRY_EAGER is not valid JSON: {}", doc.error().message));
    }
    if (!doc->IsObject()) {
      return make_error("invalid_configuration", "ORDINAUT_EXT_ENTRY_EAGER must be a JSON object: {\"id\": true}");
    }
    std::map<std::string, bool> eager;
    for (auto& m : doc->GetObject()) {
      if (!m.value.IsBool()) {
        return make_error("invalid_configuration",
                          fmt::format("ORDINAUT_EXT_ENTRY_EAGER: /{}: expected true or false, got {}",
                                      m.name.GetString(), json::type_name(m.value)));
      }
      eager[m.name.GetString()] = m.value.GetBool();
    }
    options.entry_eager = std::move(eager);
  }
  // Browser safety lists add to what HostOptions::origin_policy holds.
  // ORDINAUT_MCP_ALLOWED_HOSTS, mcp_http's own, is honoured host-wide too.
  for (const char* name : {"ORDINAUT_ALLOWED_HOSTS", "ORDINAUT_MCP_ALLOWED_HOSTS", "ORDINAUT_ALLOWED_ORIGINS"}) {
    const char* v = std::getenv(name);
    if (v == nullptr) continue;
    auto& list = std::string_view(name) == "ORDINAUT_ALLOWED_ORIGINS" ? options.origin_policy.allowed_origins
                                                                       : options.origin_policy.allowed_hosts;
    for (const auto& item : split(v, ',')) {
      auto t = trim(item);
      if (!t.empty()) list.emplace_back(t);
    }
  }
  return {};
}

}  // namespace ordinaut::detail

#include "tool_catalog.hpp"

#include <algorithm>
#include <unordered_set>

#include <fmt/format.h>

#include "protocol.hpp"

namespace ordinaut::mcp_http {

const CatalogTool* CatalogSnapshot::find(std::string_view name) const {
  const std::string key(name);
  if (auto it = by_mcp_name.find(key); it != by_mcp_name.end()) return &tools[it->second];
  if (auto it = by_registry_name.find(key); it != by_registry_name.end()) return &tools[it->second];
  return nullptr;
}

bool shortens_names(const Config& config, std::string_view owner) {
  if (owner == "core") return false;
  if (config.short_names_all) return true;
  return std::find(config.short_name_extensions.begin(), config.short_name_extensions.end(), owner) !=
         config.short_name_extensions.end();
}

std::vector<std::string> mcp_names(const std::vector<std::pair<std::string, std::string>>& entries,
                                   const Config& config) {
  std::vector<std::string> names;
  names.reserve(entries.size());
  std::unordered_map<std::string, int> uses;
  std::unordered_set<std::string> registry_names;
  for (const auto& [registry_name, owner] : entries) {
    registry_names.insert(registry_name);
    const std::string prefix = "ext." + owner + ".";
    std::string name = shortens_names(config, owner) && registry_name.starts_with(prefix)
                           ? registry_name.substr(prefix.size())
                           : registry_name;
    ++uses[name];
    names.push_back(std::move(name));
  }
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (names[i] != entries[i].first && (uses[names[i]] > 1 || registry_names.count(names[i]) != 0)) {
      names[i] = entries[i].first;  // ambiguous short name: keep the registry name
    }
  }
  return names;
}

std::shared_ptr<const CatalogSnapshot> ToolCatalog::snapshot() const {
  const std::uint64_t generation = tools_.generation();
  {
    std::lock_guard lock(mutex_);
    if (cached_ && cached_->generation == generation) return cached_;
  }
  auto snap = std::make_shared<CatalogSnapshot>();
  snap->generation = generation;  // read before listing: a change meanwhile rebuilds next time
  std::vector<ToolInfo> infos = tools_.list();

  std::vector<std::pair<std::string, std::string>> entries;
  entries.reserve(infos.size());
  for (const auto& info : infos) entries.emplace_back(info.name, info.owner);
  const std::vector<std::string> names = mcp_names(entries, config_);

  for (std::size_t i = 0; i < infos.size(); ++i) {
    const ToolInfo& info = infos[i];
    CatalogTool tool;
    tool.mcp_name = names[i];
    tool.registry_name = info.name;
    tool.owner = info.owner;
    tool.has_output_schema = info.output_schema != nullptr;
    std::string json = R"({"name":)" + quote(tool.mcp_name);
    if (!info.title.empty()) json += R"(,"title":)" + quote(info.title);
    json += R"(,"description":)" + quote(info.description);
    json += R"(,"inputSchema":)" + (info.input_schema ? json::dump(*info.input_schema) : std::string(R"({"type":"object"})"));
    if (info.output_schema) json += R"(,"outputSchema":)" + json::dump(*info.output_schema);
    if (info.annotations) json += R"(,"annotations":)" + json::dump(*info.annotations);
    json += '}';
    tool.json = std::move(json);
    snap->tools.push_back(std::move(tool));
  }
  std::sort(snap->tools.begin(), snap->tools.end(),
            [](const CatalogTool& a, const CatalogTool& b) { return a.mcp_name < b.mcp_name; });
  for (std::size_t i = 0; i < snap->tools.size(); ++i) {
    snap->by_mcp_name.emplace(snap->tools[i].mcp_name, i);
    snap->by_registry_name.emplace(snap->tools[i].registry_name, i);
  }

  std::lock_guard lock(mutex_);
  if (!cached_ || cached_->generation <= generation) cached_ = snap;
  return snap;
}

std::string error_result(std::string_view message) {
  return R"({"content":[{"type":"text","text":)" + quote(message) + R"(}],"isError":true})";
}

std::string error_result(const Error& error) {
  return R"({"content":[{"type":"text","text":)" + quote(error.message) + R"(}],"isError":true,"_meta":{")" +
         std::string(kErrorMetaKey) + R"(":)" + json::dump(json::error_details(error)) + "}}";
}

namespace {

bool is_content_block(const JsonValue& block) {
  if (!block.IsObject()) return false;
  auto type = json::get_string(block, "type");
  if (!type) return false;
  if (*type == "text") return block.HasMember("text") && block["text"].IsString();
  if (*type == "image" || *type == "audio") {
    return block.HasMember("data") && block["data"].IsString() && block.HasMember("mimeType") &&
           block["mimeType"].IsString();
  }
  if (*type == "resource") return block.HasMember("resource") && block["resource"].IsObject();
  if (*type == "resource_link") {
    return block.HasMember("uri") && block["uri"].IsString() && block.HasMember("name") && block["name"].IsString();
  }
  return false;
}

// A tool's own CallToolResult: {"content":[blocks], "structuredContent"?: {},
// "isError"?: bool, "_meta"?: {}} and nothing else.
bool is_call_tool_result(const JsonValue& v) {
  if (!v.IsObject() || !v.HasMember("content") || !v["content"].IsArray()) return false;
  for (const auto& m : v.GetObject()) {
    std::string_view name(m.name.GetString(), m.name.GetStringLength());
    if (name == "content") continue;
    if (name == "structuredContent" && m.value.IsObject()) continue;
    if (name == "isError" && m.value.IsBool()) continue;
    if (name == "_meta" && m.value.IsObject()) continue;
    return false;
  }
  for (const auto& block : v["content"].GetArray()) {
    if (!is_content_block(block)) return false;
  }
  return true;
}

}  // namespace

CallOutcome call_outcome(std::string_view name, bool has_output_schema, const Result<Json>& result,
                         bool validation_as_result) {
  CallOutcome out;
  if (!result) {
    const Error& e = result.error();
    if (e.code == "tool_not_found") {
      out.protocol_error = true;
      out.code = kInvalidParams;
      out.message = fmt::format("Unknown tool: {}", name);
      out.data_json = fmt::format(R"({{"tool":{}}})", quote(name));
      return out;
    }
    if (e.code == "invalid_input" && !validation_as_result) {
      out.protocol_error = true;
      out.code = kInvalidParams;
      out.message = e.message;
      out.data_json = fmt::format(R"({{"tool":{},"pointer":{}}})", quote(name), quote(e.pointer));
      return out;
    }
    out.result_json = error_result(e);
    return out;
  }
  const Json& value = result.value();
  if (has_output_schema) {
    const std::string text = json::dump(value);
    out.result_json = R"({"content":[{"type":"text","text":)" + quote(text) + R"(}],"structuredContent":)" + text + "}";
  } else if (is_call_tool_result(value)) {
    out.result_json = json::dump(value);
  } else if (value.IsString()) {
    out.result_json = R"({"content":[{"type":"text","text":)" +
                      quote(std::string_view(value.GetString(), value.GetStringLength())) + "}]}";
  } else {
    out.result_json = R"({"content":[{"type":"text","text":)" + quote(json::dump(value)) + "}]}";
  }
  return out;
}

}  // namespace ordinaut::mcp_http

// The registry's tools as MCP sees them: names, Tool objects, call results.
//
// Names: every registry tool is an MCP tool under its registry name
// ("ext.events_demo.publish", "core_tool"). For the extensions listed in
// ORDINAUT_MCP_SHORT_NAMES the "ext.{id}." prefix is dropped when the short
// name is unambiguous; calls accept the registry name as well.
//
// Tool objects carry the registry's annotations (MCP ToolAnnotations) when
// the tool has any.
//
// Results: a tool with an output schema gives structuredContent plus a text
// item holding the same JSON. A tool without one may return an MCP
// CallToolResult itself (an object whose "content" is an array of MCP content
// blocks: text, image, audio, resource_link, resource), which is passed on; a
// string becomes one text item; anything else one text item with its JSON.
// A failing tool gives isError:true with the error message.
//
// Thread safety: snapshot() may be called concurrently; snapshots are immutable.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ordinaut/result.hpp>
#include <ordinaut/tools.hpp>

#include "config.hpp"

namespace ordinaut::mcp_http {

struct CatalogTool {
  std::string mcp_name;
  std::string registry_name;
  std::string owner;
  std::string json;  ///< the MCP Tool object
  bool has_output_schema = false;
};

struct CatalogSnapshot {
  std::uint64_t generation = 0;
  std::vector<CatalogTool> tools;  ///< sorted by mcp_name
  std::unordered_map<std::string, std::size_t> by_mcp_name;
  std::unordered_map<std::string, std::size_t> by_registry_name;
  /// By MCP name, then by registry name; null when neither is listed.
  const CatalogTool* find(std::string_view name) const;
};

class ToolCatalog {
 public:
  ToolCatalog(ToolView tools, const Config& config) : tools_(tools), config_(config) {}
  /// The current tools; rebuilt only when the registry's generation changed.
  std::shared_ptr<const CatalogSnapshot> snapshot() const;

 private:
  ToolView tools_;
  const Config& config_;
  mutable std::mutex mutex_;
  mutable std::shared_ptr<const CatalogSnapshot> cached_;
};

/// Whether `config` lists extension `owner` in ORDINAUT_MCP_SHORT_NAMES ("core" never).
bool shortens_names(const Config& config, std::string_view owner);

/// MCP names for registry names (tools, prompts), entry by entry: the
/// "ext.{owner}." prefix is dropped for the owners `config` shortens, unless the
/// short name is used twice or is itself a registry name.
std::vector<std::string> mcp_names(const std::vector<std::pair<std::string, std::string>>& name_and_owner,
                                   const Config& config);

/// What a tools/call answers: a JSON-RPC error or a CallToolResult.
struct CallOutcome {
  bool protocol_error = false;
  int code = 0;
  std::string message;
  std::string data_json;
  std::string result_json;
};

/// Turns the registry's answer into MCP. `validation_as_result`: input that
/// violates the schema is an isError result (2025-11-25, SEP-1303) instead of
/// a -32602 error (earlier versions).
CallOutcome call_outcome(std::string_view name, bool has_output_schema, const Result<Json>& result,
                         bool validation_as_result);

/// {"content":[{"type":"text","text":message}],"isError":true}
std::string error_result(std::string_view message);

/// The _meta key of a failed call's structured error (isError results):
/// {"code": ..., and the error's details, e.g. "missing_capability"}, the same
/// details the REST companion answers.
inline constexpr std::string_view kErrorMetaKey = "io.ordinaut/error";

/// A CallToolResult with isError for a failed call: the message as text and
/// json::error_details(error) under _meta[kErrorMetaKey].
std::string error_result(const Error& error);

}  // namespace ordinaut::mcp_http

// OpenAPI description of a host's mounted routes (internal; served by the
// host at GET /ext/openapi.json).
#pragma once

#include <string>
#include <vector>

#include "ordinaut/http.hpp"
#include "ordinaut/json.hpp"

namespace ordinaut::detail {

/// What the document needs to know of one discovered extension.
struct OpenApiExtension {
  std::string id;
  std::string name;
  std::string version;
  std::string description;
  std::string state;                ///< "active", "discovered", ...
  const Router* router = nullptr;   ///< mounted routes; null when none (yet)
  bool has_health_route = false;    ///< the router answers GET /health itself
};

/// Builds an OpenAPI 3.1 document: the host's own endpoints, GET
/// /ext/{id}/health of every extension, and every mounted route (path
/// parameters, methods, summary, request/response schemas).
Json openapi_document(const std::vector<OpenApiExtension>& extensions, bool require_scopes);

}  // namespace ordinaut::detail

// AdminEndpoints: POST /ext/_admin/extensions/{id}/enable|disable|reload.
// Internal to the host.
//
// Owns: the admin API's HTTP shape (paths, methods, statuses, bodies), its
// scope check (ext:admin when scopes are required) and its audit records. The
// transitions themselves are the Lifecycle's.
//
// Thread safety: handle() may run on any number of threads; concurrent
// actions on one extension are serialised by the Lifecycle.
#pragma once

#include <string_view>

#include "host/catalog.hpp"
#include "host/lifecycle.hpp"
#include "host/services.hpp"
#include "ordinaut/http.hpp"

namespace ordinaut::detail {

class AdminEndpoints {
 public:
  AdminEndpoints(HostServices& services, const Catalog& catalog, Lifecycle& lifecycle)
      : services_(services), catalog_(catalog), lifecycle_(lifecycle) {}

  // `rest` is the path after "/ext/_admin".
  Response handle(Request& request, std::string_view rest);

 private:
  HostServices& services_;
  const Catalog& catalog_;
  Lifecycle& lifecycle_;
};

}  // namespace ordinaut::detail

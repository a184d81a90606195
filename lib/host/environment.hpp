// The host's configuration from the environment: ORDINAUT_REQUIRE_SCOPES,
// ORDINAUT_EXT_ENTRY_GRANTS, ORDINAUT_EXT_ENTRY_EAGER (docs/configuration.md).
// ORDINAUT_EXT_PATHS is read by the catalog, where discovery happens.
//
// Owns: parsing and validating those variables, nothing else. A value set in
// HostOptions wins over the environment.
#pragma once

#include "ordinaut/host.hpp"
#include "ordinaut/result.hpp"

namespace ordinaut::detail {

// Fills the options that HostOptions leaves unset from the environment (when
// options.read_environment), and require_scopes from ORDINAUT_REQUIRE_SCOPES.
// A malformed value is an error naming the variable; nothing is then changed
// that matters, since start() fails.
Result<void> apply_environment(HostOptions& options, bool& require_scopes);

}  // namespace ordinaut::detail

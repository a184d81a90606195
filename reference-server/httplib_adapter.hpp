// Conversions between cpp-httplib's request/response and ordinaut's.
#pragma once

#include <httplib.h>

#include "ordinaut/http.hpp"
#include "stream_watcher.hpp"

namespace ordinaut_server {

/// Builds the host's request. The path is taken from the raw request target
/// (still percent-encoded): httplib's `path` is already decoded, and decoding
/// twice would turn "%252e" into "." and "%2f" into a separator.
ordinaut::Request to_request(const httplib::Request& in);

/// Writes `out` into `res`. A streamed response runs its producer under
/// `watcher` on connection socket `sock` when httplib writes the body.
void write_response(ordinaut::Response&& out, httplib::Response& res, StreamWatcher& watcher, int sock);

}  // namespace ordinaut_server

// Checks for the SDK client scripts (sdk_client_content.mjs,
// sdk_client_scheduler.mjs): each check prints "ok" or "FAIL" with its
// detail; finish() prints the verdict and exits 0 only when none failed.
let failures = 0;

export function check(ok, what, detail) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${ok || detail === undefined ? '' : ': ' + JSON.stringify(detail)}`);
  if (!ok) failures++;
  return ok;
}

export function finish() {
  console.log(failures === 0 ? 'OK' : `${failures} check(s) failed`);
  process.exit(failures === 0 ? 0 : 1);
}

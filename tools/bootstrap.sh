# Sourced by ./run. Brings the repository to a working state using only the
# package registries (PyPI, npm): a Python venv in .venv, the npm toolchain in
# node_modules, and the solc-js facade where py-solc-x looks for compilers.
# Each step is skipped while the stamp of its inputs is unchanged.

MEDSHARE_PYTHON="${MEDSHARE_PYTHON:-python3.11}"

_medshare_stamp() { cat "$@" | sha256sum | cut -d' ' -f1; }

_medshare_log() { printf '[bootstrap] %s\n' "$*" >&2; }

# Runs a step with its output in a log file, shown only when the step fails.
_medshare_quietly() {
  local log="$1"; shift
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    _medshare_log "failed: $* (log: $log)"
    return 1
  fi
}

_medshare_install() {
  local venv="$ROOT/.venv" tools="$ROOT/.tools"
  local py_stamp node_stamp solc_version anvil_bin forge_bin
  mkdir -p "$tools"

  py_stamp="$(_medshare_stamp "$ROOT/pyproject.toml")"
  if [ "$(cat "$venv/.medshare-stamp" 2>/dev/null)" != "$py_stamp" ]; then
    _medshare_log "installing Python packages into .venv (first run: a few minutes)"
    [ -x "$venv/bin/python" ] || "$MEDSHARE_PYTHON" -m venv "$venv"
    _medshare_quietly "$tools/pip.log" "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade pip
    _medshare_quietly "$tools/pip.log" "$venv/bin/python" -m pip install --disable-pip-version-check -e "$ROOT[test]"
    echo "$py_stamp" > "$venv/.medshare-stamp"
  fi

  node_stamp="$(_medshare_stamp "$ROOT/package.json" "$ROOT/package-lock.json")"
  if [ "$(cat "$ROOT/node_modules/.medshare-stamp" 2>/dev/null)" != "$node_stamp" ]; then
    _medshare_log "installing npm packages into node_modules"
    # --ignore-scripts: anvil's binary comes in its platform package; its
    # postinstall would only fetch it again. `npm install` rather than `npm ci`:
    # npm records only this platform's optional anvil package in the lockfile,
    # which `npm ci` then rejects as out of sync; install still takes the
    # locked versions and leaves the lockfile untouched.
    (cd "$ROOT" && _medshare_quietly "$tools/npm.log" npm install --ignore-scripts --no-audit --no-fund)
    echo "$node_stamp" > "$ROOT/node_modules/.medshare-stamp"
  fi

  # py-solc-x finds compilers as solc-vX.Y.Z in SOLCX_BINARY_PATH; the facade
  # answers for the solc-js version that npm installed.
  solc_version="$(node -p "require('$ROOT/node_modules/solc/package.json').version")"
  mkdir -p "$tools/solcx" "$tools/bin"
  ln -sfn "$ROOT/tools/solc-facade.cjs" "$tools/solcx/solc-v$solc_version"
  # ape-foundry signals the process it starts; link the real anvil binary, not
  # npm's node wrapper, so that signal reaches anvil itself.
  anvil_bin="$(_medshare_platform_binary anvil)"
  ln -sfn "$anvil_bin" "$tools/bin/anvil"
  # forge (Solidity fuzz and invariant tests, and the build Halmos and Slither read) ships its
  # real binary the same way.
  forge_bin="$(_medshare_platform_binary forge)"
  ln -sfn "$forge_bin" "$tools/bin/forge"
}

# The analysis tools only the tests use (./run test calls this; the demo does not wait for them).
# Halmos and Slither each get a virtualenv of their own: halmos pins rich<14.1 below the
# project's, and slither-analyzer brings solc-select, whose `solc` shim must not land on PATH
# (it would try to download compilers). Only their entry points are linked into .tools/bin.
medshare_analysis_tools() {
  exec 9>"$ROOT/.tools/bootstrap.lock"
  if command -v flock >/dev/null; then flock 9; fi
  _medshare_tool_venv halmos
  _medshare_tool_venv slither
  if command -v flock >/dev/null; then flock -u 9; fi
  exec 9>&-
}

# The real binary npm installed for @foundry-rs/NAME on this platform.
_medshare_platform_binary() {
  (cd "$ROOT/node_modules/@foundry-rs/$1" && node -p "
    const arch = {x64: 'amd64', arm64: 'arm64'}[process.arch];
    const pkg = require.resolve('@foundry-rs/$1-' + process.platform + '-' + arch + '/package.json');
    require('path').join(pkg, '..', 'bin', '$1')")
}

# A virtualenv .tools/NAME from tools/requirements-NAME.txt (exact pins), its command NAME linked
# into .tools/bin; skipped while the requirements file is unchanged.
_medshare_tool_venv() {
  local name="$1" venv="$ROOT/.tools/$1" requirements="$ROOT/tools/requirements-$1.txt" stamp
  stamp="$(_medshare_stamp "$requirements")"
  if [ "$(cat "$venv/.medshare-stamp" 2>/dev/null)" != "$stamp" ]; then
    _medshare_log "installing $name into .tools/$name"
    [ -x "$venv/bin/python" ] || "$MEDSHARE_PYTHON" -m venv "$venv"
    _medshare_quietly "$ROOT/.tools/$name-pip.log" "$venv/bin/python" -m pip install --disable-pip-version-check -r "$requirements"
    echo "$stamp" > "$venv/.medshare-stamp"
  fi
  ln -sfn "$venv/bin/$name" "$ROOT/.tools/bin/$name"
}

medshare_bootstrap() {
  command -v "$MEDSHARE_PYTHON" >/dev/null || { echo "MedShare needs $MEDSHARE_PYTHON on PATH" >&2; return 1; }
  command -v npm >/dev/null || { echo "MedShare needs node and npm on PATH" >&2; return 1; }

  # Two commands started together must not install into the same venv at once.
  mkdir -p "$ROOT/.tools"
  exec 9>"$ROOT/.tools/bootstrap.lock"
  if command -v flock >/dev/null; then flock 9; fi
  _medshare_install
  if command -v flock >/dev/null; then flock -u 9; fi
  exec 9>&-

  export SOLCX_BINARY_PATH="$ROOT/.tools/solcx"
  export VIRTUAL_ENV="$ROOT/.venv"
  export PATH="$ROOT/.tools/bin:$ROOT/.venv/bin:$ROOT/node_modules/.bin:$PATH"
}

# SoftHSM2 (Debian `softhsm2`): the PKCS#11 token that the HSM tests (tests/hsm) and `./run bench crypto`
# use; only those call this, so `./run demo` installs nothing for it. Installed with apt-get where apt is
# available and SoftHSM2 is missing; elsewhere (or if apt fails) the HSM tests skip, saying why.
medshare_install_softhsm() {
  command -v softhsm2-util >/dev/null && return 0
  if ! command -v apt-get >/dev/null; then
    _medshare_log "SoftHSM2 is not installed and there is no apt-get: the HSM tests will be skipped"
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      _medshare_log "SoftHSM2 is not installed and apt-get needs root: the HSM tests will be skipped" \
        "(install it with: sudo apt-get install softhsm2)"
      return 0
    fi
  fi
  mkdir -p "$ROOT/.tools"
  _medshare_log "installing SoftHSM2 (apt-get install softhsm2) for the HSM tests"
  local apt=(env DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 -y -q)
  # Package lists may be missing or stale on a fresh machine: update once if the install alone fails.
  _medshare_quietly "$ROOT/.tools/apt.log" "${apt[@]}" install softhsm2 2>/dev/null \
    || { _medshare_quietly "$ROOT/.tools/apt.log" "${apt[@]}" update \
         && _medshare_quietly "$ROOT/.tools/apt.log" "${apt[@]}" install softhsm2; } \
    || _medshare_log "could not install SoftHSM2 (log: .tools/apt.log): the HSM tests will be skipped"
}

# A local IPFS daemon (npm `ipfs`, js-ipfs 0.66.1, which serves Kubo's RPC API) in tools/ipfs-daemon,
# with its own package.json and lockfile, apart from the product's npm tree: for the test command
# (the multi-site tests start daemons) and for `medshare ipfs up`. Its tree was resolved as of
# 2024-12-13 (`npm install --before=2024-12-14 ipfs@0.66.1`): later releases of its dependencies fail
# on Node 20. Skipped while the stamp of its lockfile is unchanged.
medshare_ipfs_daemon() {
  local dir="$ROOT/tools/ipfs-daemon" stamp
  stamp="$(_medshare_stamp "$dir/package.json" "$dir/package-lock.json")"
  [ "$(cat "$dir/node_modules/.medshare-stamp" 2>/dev/null)" != "$stamp" ] || return 0
  mkdir -p "$ROOT/.tools"
  (
    if command -v flock >/dev/null; then exec 8>"$ROOT/.tools/ipfs-daemon.lock" && flock 8; fi
    [ "$(cat "$dir/node_modules/.medshare-stamp" 2>/dev/null)" != "$stamp" ] || exit 0
    _medshare_log "installing the IPFS daemon (js-ipfs) into tools/ipfs-daemon"
    cd "$dir" && _medshare_quietly "$ROOT/.tools/ipfs-npm.log" npm ci --ignore-scripts --no-audit --no-fund
    echo "$stamp" > "$dir/node_modules/.medshare-stamp"
  )
}

# Offline check of flake.nix: nix cannot fetch nixpkgs on the CI machine, so
# this evaluates the flake's outputs against a stub nixpkgs and checks their
# shape: which packages, apps and shells exist, that the build reads
# Cargo.lock, runs the tests, and has the codecs' build tools and libraries.
#   nix-instantiate --eval --strict nix/flake-shape.nix    # prints true
let
  flake = import ../flake.nix;
  systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
  drv = name: attrs: attrs // { inherit name; type = "derivation"; outPath = "/stub/${name}"; };
  stubPkgs = system: {
    stdenv.hostPlatform.system = system;
    lib = {
      fileset = { toSource = a: a.root; unions = fs: fs; };
      licenses = { mit = "mit"; asl20 = "asl20"; };
    };
    rustPlatform.buildRustPackage = a: drv a.pname a;
    runCommand = name: env: script: drv name (env // { inherit script; });
    mkShell = a: drv "shell" a;
  } // builtins.listToAttrs (map (p: { name = p; value = p; }) [
    "pkg-config" "cmake" "nasm" "libjpeg_turbo" "libde265" "dav1d" "libaom" "libtiff"
    "cargo" "rustc" "rustfmt" "clippy" "rust-analyzer"
  ]);
  nixpkgs = {
    lib.genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    legacyPackages = builtins.listToAttrs (map (s: { name = s; value = stubPkgs s; }) systems);
  };
  self = flake.outputs { inherit self nixpkgs; };
  check = cond: msg: if cond then true else throw "flake-shape: ${msg}";
  names = builtins.attrNames;
  pkgs = self.packages.x86_64-linux;
  main = pkgs.default;
  cargo = builtins.fromTOML (builtins.readFile ../Cargo.toml);
  lock = builtins.fromJSON (builtins.readFile ../flake.lock);
  pin = lock.nodes.nixpkgs;
  # default.nix (nix-build without flakes) gives the flake's packages.
  legacy = import ../default.nix { system = "x86_64-linux"; pkgs = stubPkgs "x86_64-linux"; };
in
builtins.all (x: x) [
  (check (names self.packages == systems || builtins.sort builtins.lessThan (names self.packages) == builtins.sort builtins.lessThan systems) "packages for every system")
  (check (names pkgs == [ "default" "nl-client" "nl-server" "nlimage" ]) "packages default, nl-server, nl-client, nlimage")
  (check (main.version == cargo.workspace.package.version) "version from Cargo.toml")
  (check (main.cargoLock.lockFile == ../Cargo.lock) "builds from Cargo.lock")
  (check main.doCheck "runs the tests in the build")
  (check (builtins.all (t: builtins.elem t main.nativeBuildInputs) [ "cmake" "nasm" "pkg-config" ])
    "cmake and nasm build the bundled libjpeg-turbo and libheif")
  (check (builtins.all (l: builtins.elem l main.buildInputs) [ "libjpeg_turbo" "libde265" "dav1d" "libaom" "libtiff" ])
    "the codecs' libraries: libjpeg-turbo, libde265, dav1d, libaom, libtiff")
  (check (builtins.all (l: builtins.elem l self.devShells.x86_64-linux.default.packages) [ "cmake" "libde265" "libtiff" ])
    "nix develop has the codecs too")
  (check (builtins.match ".*bin/nl-server.*" pkgs.nl-server.script != null) "nl-server package holds bin/nl-server")
  (check (builtins.match ".*bin/nl-client.*" pkgs.nl-client.script != null) "nl-client package holds bin/nl-client")
  (check (self.apps.x86_64-linux.nl-server.program == "/stub/nlimage/bin/nl-server") "nix run .#nl-server")
  (check (self.apps.x86_64-linux.nl-client.program == "/stub/nlimage/bin/nl-client") "nix run .#nl-client")
  (check (builtins.elem "rustc" self.devShells.x86_64-linux.default.packages) "nix develop has the toolchain")
  (check (self.checks.x86_64-linux.build-and-test == main) "nix flake check builds and tests")
  (check (lock.version == 7 && lock.nodes.root.inputs.nixpkgs == "nixpkgs") "flake.lock pins the one input")
  (check ("github:${pin.original.owner}/${pin.original.repo}/${pin.original.ref}" == flake.inputs.nixpkgs.url)
    "flake.lock pins the branch flake.nix names")
  (check (builtins.match "[0-9a-f]{40}" pin.locked.rev != null) "a full commit id")
  (check (builtins.match "sha256-[A-Za-z0-9+/]{43}=" pin.locked.narHash != null) "a SRI sha256 narHash")
  (check (names legacy == names pkgs && legacy.default.pname == main.pname
    && legacy.default.cargoLock == main.cargoLock) "default.nix builds the flake's packages")
]

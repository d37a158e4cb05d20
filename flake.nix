{
  description = "nlimage: a streaming gRPC image service (nl-server, nl-client)";

  # nixos-25.11: its Rust (1.91) is above the workspace's MSRV (1.89).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      version = (builtins.fromTOML (builtins.readFile ./Cargo.toml)).workspace.package.version;

      # Both binaries from one build; the workspace tests run in the build.
      nlimage = pkgs: pkgs.rustPlatform.buildRustPackage {
        pname = "nlimage";
        inherit version;
        src = pkgs.lib.fileset.toSource {
          root = ./.;
          fileset = pkgs.lib.fileset.unions [
            ./Cargo.toml ./Cargo.lock ./build.rs ./src ./proto ./core ./server ./client
          ];
        };
        # Everything comes from Cargo.lock: no network in the sandbox.
        cargoLock.lockFile = ./Cargo.lock;
        # libjpeg-turbo 3 from nixpkgs, found by the turbojpeg crate through
        # pkg-config; cmake and nasm in case it builds its bundled copy;
        # libheif is built from the libheif-sys crate's bundled sources with
        # cmake, against nixpkgs' libde265, dav1d and libaom; libtiff is
        # linked as it is.
        nativeBuildInputs = [ pkgs.pkg-config pkgs.cmake pkgs.nasm ];
        buildInputs = [ pkgs.libjpeg_turbo pkgs.libde265 pkgs.dav1d pkgs.libaom pkgs.libtiff ];
        dontUseCmakeConfigure = true;
        cargoBuildFlags = [ "-p" "nlimage-server" "-p" "nlimage-client" ];
        doCheck = true;
        cargoTestFlags = [ "--workspace" ];
        # The integration tests talk to a server on 127.0.0.1.
        __darwinAllowLocalNetworking = true;
        meta = {
          description = "Streaming gRPC image service: nl-server and nl-client";
          license = with pkgs.lib.licenses; [ mit asl20 ];
          mainProgram = "nl-server";
        };
      };

      # One binary of the build, under its own name.
      only = pkgs: drv: name: pkgs.runCommand "${name}-${version}" { meta.mainProgram = name; } ''
        mkdir -p $out/bin
        ln -s ${drv}/bin/${name} $out/bin/${name}
      '';
    in
    {
      packages = forAllSystems (pkgs:
        let all = nlimage pkgs; in {
          default = all;
          nlimage = all;
          nl-server = only pkgs all "nl-server";
          nl-client = only pkgs all "nl-client";
        });

      apps = forAllSystems (pkgs:
        let all = self.packages.${pkgs.stdenv.hostPlatform.system}.default; in {
          default = { type = "app"; program = "${all}/bin/nl-server"; };
          nl-server = { type = "app"; program = "${all}/bin/nl-server"; };
          nl-client = { type = "app"; program = "${all}/bin/nl-client"; };
        });

      checks = forAllSystems (pkgs: {
        build-and-test = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.cargo pkgs.rustc pkgs.rustfmt pkgs.clippy pkgs.rust-analyzer
            pkgs.pkg-config pkgs.cmake pkgs.nasm pkgs.libjpeg_turbo
            pkgs.libde265 pkgs.dav1d pkgs.libaom pkgs.libtiff
          ];
        };
      });
    };
}

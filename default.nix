# nix-build without flakes (`./build.sh nix-legacy`): the flake's own
# packages, evaluated from the nixpkgs revision flake.lock pins -- the way
# flake-compat evaluates a flake, so there is one package definition.
#   nix-build -A default        # both binaries in ./result/bin/
#   nix-build -A nl-server
{ system ? builtins.currentSystem
, pkgs ? (
    let locked = (builtins.fromJSON (builtins.readFile ./flake.lock)).nodes.nixpkgs.locked;
    in import (fetchTarball {
      url = "https://github.com/${locked.owner}/${locked.repo}/archive/${locked.rev}.tar.gz";
      sha256 = locked.narHash;
    }) { inherit system; })
}:
let
  # The flake's nixpkgs input, as far as flake.nix uses it.
  nixpkgs = {
    lib.genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    legacyPackages.${system} = pkgs;
  };
  self = (import ./flake.nix).outputs { inherit self nixpkgs; };
in
self.packages.${system}

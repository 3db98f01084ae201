{
  description = "forgejo-nsc: ephemeral Forgejo/Gitea Actions runners on Namespace Cloud (dispatcher and autoscaler)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (
        system: pkgs:
        let
          forgejo-nsc = pkgs.callPackage ./nix/package.nix { };
          nsc = pkgs.callPackage ./nix/nsc.nix { };
        in
        {
          inherit forgejo-nsc nsc;
          default = forgejo-nsc;
          # The image includes nsc, so it builds once nix/nsc.nix has real hashes.
          image = pkgs.callPackage ./nix/image.nix { inherit forgejo-nsc nsc; };
          # For the Compute API only, or an nsc mounted at run time.
          image-without-nsc = pkgs.callPackage ./nix/image.nix {
            inherit forgejo-nsc;
            nsc = null;
          };
        }
      );

      overlays.default = final: _prev: {
        forgejo-nsc = final.callPackage ./nix/package.nix { };
      };

      nixosModules.default = import ./nix/module.nix self;

      devShells = forAllSystems (
        _system: pkgs: {
          default = pkgs.mkShell {
            packages = [
              pkgs.nodejs_22
              pkgs.python3
              pkgs.gcc
              pkgs.gnumake
              pkgs.sqlite
            ];
            NS_DO_NOT_UPDATE = "1";
          };
        }
      );

      checks = forAllSystems (
        system: pkgs:
        let
          eval = nixpkgs.lib.nixosSystem {
            inherit system;
            modules = [
              self.nixosModules.default
              {
                boot.isContainer = true;
                system.stateVersion = "25.11";
                services.forgejo-nsc.dispatcher = {
                  enable = true;
                  credentials.forgejo-token = "/run/secrets/forgejo-token";
                  settings.forgejo = {
                    base_url = "https://forgejo.example.com";
                    token_file = "\${CREDENTIALS_DIRECTORY}/forgejo-token";
                  };
                };
                services.forgejo-nsc.autoscaler = {
                  enable = true;
                  settings.instances = [
                    {
                      name = "main";
                      forgejo.base_url = "https://forgejo.example.com";
                      forgejo.token_file = "\${CREDENTIALS_DIRECTORY}/forgejo-token";
                      targets = [ { labels = [ "namespace-profile-linux-medium" ]; } ];
                    }
                  ];
                  credentials.forgejo-token = "/run/secrets/forgejo-token";
                };
              }
            ];
          };
        in
        {
          package = self.packages.${system}.forgejo-nsc;
          dispatcher-unit = eval.config.systemd.units."forgejo-nsc-dispatcher.service".unit;
          autoscaler-unit = eval.config.systemd.units."forgejo-nsc-autoscaler.service".unit;
        }
      );
    };
}

# Checks of the Nix files that need no nixpkgs and no network, for machines where the flake cannot
# be evaluated (CI without Nix, air-gapped hosts):
#   nix-instantiate --eval --strict nix/tests/static.nix      (prints { checks = true; storeUrls = …; })
# It evaluates nix/npm-lock.nix on the real package-lock.json, the NixOS module against a stub
# `lib`, and the flake's outputs against a stub nixpkgs; any wrong value aborts with a message.
# The real evaluation is `nix flake check` (it needs nixpkgs, so the network).
let
  check = what: got: want: if got == want then true else throw "${what}: got ${builtins.toJSON got}, want ${builtins.toJSON want}";

  # --- npm-lock.nix -------------------------------------------------------------------------
  lock = import ../npm-lock.nix { } (builtins.fromJSON (builtins.readFile ../../package-lock.json));
  names = builtins.attrNames lock.packages;
  unresolved = builtins.filter (k: k != "" && !(lock.packages.${k} ? resolved)) names;
  lockChecks = [
    (check "every locked package has a URL" unresolved [ ])
    (check "the root package needs none" (lock.packages."" ? resolved) false)
    (check "scoped package URL" lock.packages."node_modules/@types/node".resolved
      "https://registry.npmjs.org/@types/node/-/node-${lock.packages."node_modules/@types/node".version}.tgz")
    (check "nested package URL" lock.packages."node_modules/@eslint/eslintrc/node_modules/ajv".resolved
      "https://registry.npmjs.org/ajv/-/ajv-${lock.packages."node_modules/@eslint/eslintrc/node_modules/ajv".version}.tgz")
  ];

  # --- module.nix ---------------------------------------------------------------------------
  lib = {
    mkOption = x: x;
    mkEnableOption = x: x;
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = x: x;
    mkDefault = x: x;
    types = {
      package = "package";
      nullOr = x: x;
      path = "path";
      attrsOf = x: x;
    };
    literalExpression = x: x;
    concatLists = builtins.concatLists;
    mapAttrsToList = f: a: map (k: f k a.${k}) (builtins.attrNames a);
    concatStringsSep = builtins.concatStringsSep;
    imap0 = f: l: builtins.genList (i: f i (builtins.elemAt l i)) (builtins.length l);
    optional = c: x: if c then [ x ] else [ ];
    getExe' = p: n: "${p}/bin/${n}";
    getExe = p: "${p}/bin/nsc";
  };
  pkgs = {
    formats.yaml = _: {
      type = "yaml";
      generate = n: _v: "/nix/store/${n}";
    };
    stdenv.hostPlatform.system = "x86_64-linux";
  };
  module = import ../module.nix { packages.x86_64-linux.forgejo-nsc = "/pkg"; };
  daemon = settings: {
    enable = true;
    configFile = null;
    package = "/pkg";
    nscPackage = null;
    credentials.forgejo-token = "/run/agenix/forgejo";
    environmentFile = null;
    postgresUrlFile = null;
    inherit settings;
  };
  evalWith = { dispatcherSettings, createLocally ? false, postgresUrlFile ? null }: module {
    config.services.forgejo-nsc = {
      dispatcher = daemon dispatcherSettings // { inherit postgresUrlFile; };
      autoscaler = daemon { listen = "127.0.0.1:8081"; } // { inherit postgresUrlFile; };
      postgresql.createLocally = createLocally;
    };
    inherit lib pkgs;
  };
  eval = dispatcherSettings: evalWith { inherit dispatcherSettings; };
  # config = mkMerge [ (mkIf createLocally …) (mkIf dispatcher.enable …) (mkIf autoscaler.enable …) ]
  parts = r: {
    postgresql = builtins.elemAt r.config 0;
    dispatcher = (builtins.elemAt r.config 1).content;
    autoscaler = (builtins.elemAt r.config 2).content;
  };
  # settings = mkIf (configFile == null) (mkMerge [ defaults (mkIf …) … ]): the parts whose condition holds, merged.
  settingsOf = part: name:
    let
      s = part.services.forgejo-nsc.${name}.settings.content;
      active = builtins.filter (x: !(x ? _type) || x.condition) s;
    in
    builtins.foldl' (acc: x: acc // (if x ? _type then x.content else x)) { } active;
  urlFor = listen: (settingsOf (parts (eval { inherit listen; })).autoscaler "autoscaler").dispatcher.url.content;
  withSecrets = parts (eval {
    listen = "127.0.0.1:8080";
    forgejo.token = "plain";
    forgejo.token_file = "\${CREDENTIALS_DIRECTORY}/forgejo-token";
    auth.tokens = [ ];
  });
  unit = withSecrets.dispatcher.systemd.services.forgejo-nsc-dispatcher;
  moduleChecks = [
    (check "autoscaler finds a dispatcher on 0.0.0.0" (urlFor "0.0.0.0:9090") "http://127.0.0.1:9090")
    (check "autoscaler finds a dispatcher on :port" (urlFor ":8080") "http://127.0.0.1:8080")
    (check "autoscaler finds a dispatcher on [::]" (urlFor "[::]:8080") "http://[::1]:8080")
    (check "autoscaler keeps a concrete host" (urlFor "10.1.2.3:8080") "http://10.1.2.3:8080")
    (check "plain secrets are warned about, empty lists are not" withSecrets.dispatcher.warnings [
      "services.forgejo-nsc.dispatcher.settings.forgejo.token holds a secret that ends up world-readable in the Nix store; use credentials and forgejo.token_file instead"
    ])
    (check "credentials become LoadCredential" unit.serviceConfig.LoadCredential [ "forgejo-token:/run/agenix/forgejo" ])
    (check "ExecStart" unit.serviceConfig.ExecStart "/pkg/bin/forgejo-nsc-dispatcher --config /nix/store/forgejo-nsc-dispatcher.yaml")
    (check "config checked before start" unit.serviceConfig.ExecStartPre "/pkg/bin/forgejo-nsc-dispatcher --config /nix/store/forgejo-nsc-dispatcher.yaml --check")
    (check "no capabilities" unit.serviceConfig.CapabilityBoundingSet "")
    (check "nsc never updates itself" unit.environment.NS_DO_NOT_UPDATE "1")
    (check "autoscaler starts after the dispatcher"
      (builtins.elem "forgejo-nsc-dispatcher.service" withSecrets.autoscaler.systemd.services.forgejo-nsc-autoscaler.after) true)
    (check "SQLite by default" (settingsOf withSecrets.dispatcher "dispatcher").dispatcher
      { state_path = "/var/lib/forgejo-nsc-dispatcher/dispatcher.db"; })
    (check "no PostgreSQL by default" withSecrets.postgresql.condition false)
  ] ++ postgresChecks;

  # --- module.nix: PostgreSQL ----------------------------------------------------------------
  local = parts (evalWith { dispatcherSettings = { listen = "127.0.0.1:8080"; }; createLocally = true; });
  remote = parts (evalWith { dispatcherSettings = { listen = "127.0.0.1:8080"; }; postgresUrlFile = "/run/agenix/pg-url"; });
  unitOf = p: name: p.${name}.systemd.services."forgejo-nsc-${name}";
  # The settings the module adds for each daemon (mkIf resolved, parts deep-merged), as the daemons
  # will read them: test/nix/module.test.ts puts them through the daemons' own config schemas.
  isOff = v: builtins.isAttrs v && v ? _type && !v.condition;
  resolve = x:
    if builtins.isAttrs x && x ? _type then (if x.condition then resolve x.content else { })
    else if builtins.isAttrs x then
      builtins.listToAttrs (map (k: { name = k; value = resolve x.${k}; }) (builtins.filter (k: !(isOff x.${k})) (builtins.attrNames x)))
    else x;
  deepMerge = a: b: a // builtins.mapAttrs (k: v: if a ? ${k} && builtins.isAttrs a.${k} && builtins.isAttrs v then deepMerge a.${k} v else v) b;
  moduleSettings = part: name:
    let s = part.services.forgejo-nsc.${name}.settings; in
    if s.condition then builtins.foldl' (acc: x: deepMerge acc (resolve x)) { } s.content else { };
  settings = {
    sqlite = { dispatcher = moduleSettings withSecrets.dispatcher "dispatcher"; autoscaler = moduleSettings withSecrets.autoscaler "autoscaler"; };
    local = { dispatcher = moduleSettings local.dispatcher "dispatcher"; autoscaler = moduleSettings local.autoscaler "autoscaler"; };
    remote = { dispatcher = moduleSettings remote.dispatcher "dispatcher"; autoscaler = moduleSettings remote.autoscaler "autoscaler"; };
  };
  # What the daemons receive as their store URL; test/nix/module.test.ts opens them with the
  # daemon's own code.
  storeUrls = {
    dispatcher = (settingsOf local.dispatcher "dispatcher").dispatcher.store;
    autoscaler = (settingsOf local.autoscaler "autoscaler").replicas.store;
  };
  postgresChecks = [
    (check "createLocally enables PostgreSQL" local.postgresql.content.services.postgresql.enable true)
    (check "one database per daemon" local.postgresql.content.services.postgresql.ensureDatabases [ "forgejo-nsc-dispatcher" "forgejo-nsc-autoscaler" ])
    (check "each owned by the daemon's user" (map (u: u.name) local.postgresql.content.services.postgresql.ensureUsers)
      [ "forgejo-nsc-dispatcher" "forgejo-nsc-autoscaler" ])
    (check "dispatcher store over the socket" storeUrls.dispatcher "postgres://forgejo-nsc-dispatcher@/forgejo-nsc-dispatcher?host=/run/postgresql")
    (check "autoscaler store over the socket" storeUrls.autoscaler "postgres://forgejo-nsc-autoscaler@/forgejo-nsc-autoscaler?host=/run/postgresql")
    (check "no SQLite path beside a store" ((settingsOf local.dispatcher "dispatcher").dispatcher ? state_path) false)
    (check "dispatcher waits for the local PostgreSQL" (builtins.elem "postgresql.service" (unitOf local "dispatcher").after) true)
    (check "dispatcher requires it" (unitOf local "dispatcher").requires [ "postgresql.service" ])
    (check "autoscaler waits for the local PostgreSQL" (builtins.elem "postgresql.service" (unitOf local "autoscaler").after) true)
    (check "autoscaler still waits for the dispatcher" (builtins.elem "forgejo-nsc-dispatcher.service" (unitOf local "autoscaler").after) true)
    (check "a remote URL file becomes a credential" (unitOf remote "dispatcher").serviceConfig.LoadCredential
      [ "forgejo-token:/run/agenix/forgejo" "postgres-url:/run/agenix/pg-url" ])
    (check "named by store_file" (settingsOf remote.dispatcher "dispatcher").dispatcher
      { store_file = "\${CREDENTIALS_DIRECTORY}/postgres-url"; })
    (check "and replicas.store_file" (settingsOf remote.autoscaler "autoscaler").replicas
      { store_file = "\${CREDENTIALS_DIRECTORY}/postgres-url"; })
    (check "no local PostgreSQL for a remote one" remote.postgresql.condition false)
  ];

  # --- flake.nix ----------------------------------------------------------------------------
  stubLib = {
    genAttrs = ns: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) ns);
    nixosSystem = _: { config.systemd.units = { "forgejo-nsc-dispatcher.service".unit = "d"; "forgejo-nsc-autoscaler.service".unit = "a"; }; };
  };
  stubPkgs = system: {
    callPackage = path: args: { inherit path args system; };
    mkShell = a: a;
    nodejs_22 = "nodejs_22";
    python3 = "python3";
    gcc = "gcc";
    gnumake = "gnumake";
    sqlite = "sqlite";
  };
  flake = (import ../../flake.nix).outputs {
    self = flake;
    nixpkgs = {
      lib = stubLib;
      legacyPackages = stubLib.genAttrs [ "x86_64-linux" "aarch64-linux" ] stubPkgs;
    };
  };
  flakeChecks = [
    (check "packages per system" (builtins.attrNames flake.packages.aarch64-linux) [ "default" "forgejo-nsc" "image" "image-without-nsc" "nsc" ])
    (check "image carries nsc" (flake.packages.x86_64-linux.image.args.nsc.system) "x86_64-linux")
    (check "image-without-nsc has none" flake.packages.x86_64-linux.image-without-nsc.args.nsc null)
    (check "dev shell has node 22" (builtins.elem "nodejs_22" flake.devShells.x86_64-linux.default.packages) true)
    (check "module is a function" (builtins.isFunction flake.nixosModules.default) true)
  ];
in
{
  checks = builtins.all (x: x) (lockChecks ++ moduleChecks ++ flakeChecks);
  inherit storeUrls settings;
}

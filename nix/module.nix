# NixOS module: services.forgejo-nsc.{dispatcher,autoscaler}.
#
# Secrets never go into `settings` (it is rendered into the world-readable Nix store). Hand secret
# files (agenix, sops-nix, plain paths) to the service through `credentials`; systemd copies them
# into $CREDENTIALS_DIRECTORY, readable by the service only, and the config names them with the
# `*_file` keys, e.g. forgejo.token_file = "\${CREDENTIALS_DIRECTORY}/forgejo-token" (the daemons
# expand ${VAR} in every config string).
flake:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    mkMerge
    mkDefault
    types
    literalExpression
    ;

  cfg = config.services.forgejo-nsc;
  yaml = pkgs.formats.yaml { };
  system = pkgs.stdenv.hostPlatform.system;
  flakePackages = flake.packages.${system} or { };

  secretKeys = [
    "token"
    "tokens"
    "webhook_secret"
    "secret"
    "password"
    "bearer_token"
  ];

  # Key paths in `settings` that hold a secret in plain text.
  plainSecrets =
    prefix: value:
    if builtins.isAttrs value then
      lib.concatLists (
        lib.mapAttrsToList (
          k: v:
          let
            at = if prefix == "" then k else "${prefix}.${k}";
          in
          if builtins.elem k secretKeys && v != null && v != [ ] then [ at ] else plainSecrets at v
        ) value
      )
    else if builtins.isList value then
      lib.concatLists (lib.imap0 (i: v: plainSecrets "${prefix}[${toString i}]" v) value)
    else
      [ ];

  daemonOptions = name: {
    enable = mkEnableOption "the forgejo-nsc ${name}";

    package = mkOption {
      type = types.package;
      default = flakePackages.forgejo-nsc or (throw "forgejo-nsc: no package for ${system}; set services.forgejo-nsc.${name}.package");
      defaultText = literalExpression "forgejo-nsc.packages.\${system}.forgejo-nsc";
      description = "The forgejo-nsc package providing forgejo-nsc-${name}.";
    };

    settings = mkOption {
      type = yaml.type;
      default = { };
      description = ''
        The ${name}'s configuration (see config.example.yaml / autoscaler.example.yaml), rendered
        to YAML. Ignored when `configFile` is set. Put no secrets here: use `credentials` and
        the `*_file` keys.
      '';
    };

    configFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/etc/forgejo-nsc/${name}.yaml";
      description = "A YAML config file to use instead of the one generated from `settings`.";
    };

    credentials = mkOption {
      type = types.attrsOf types.path;
      default = { };
      example = literalExpression ''{ forgejo-token = config.age.secrets.forgejo-nsc-token.path; }'';
      description = ''
        Secret files passed with systemd's LoadCredential=. Each is readable by the service at
        `''${CREDENTIALS_DIRECTORY}/<name>`; refer to it from a `*_file` setting. The source
        file may be readable by root only (agenix's default).
      '';
    };

    postgresUrlFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/run/agenix/forgejo-nsc-postgres-url";
      description = ''
        A file holding the postgres:// URL (with its password) of a remote PostgreSQL that the
        ${name} replicas share (docs/replicas.md). Passed as the credential `postgres-url` and named
        by ${if name == "dispatcher" then "dispatcher.store_file" else "replicas.store_file"}. Leave null for SQLite
        (one machine), or use services.forgejo-nsc.postgresql.createLocally.
      '';
    };

    environmentFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = ''
        A systemd EnvironmentFile= for ''${VAR} references in the config (the config loader
        expands them). Prefer `credentials` for secrets: environment variables are visible to
        the service's children.
      '';
    };
  };

  # "127.0.0.1:8080", ":8080", "0.0.0.0:8080", "[::]:8080" -> a URL that reaches it from this host.
  localUrl =
    listen:
    let
      m = builtins.match "(.*):([0-9]+)" listen;
      host = if m == null then "" else builtins.elemAt m 0;
      port = if m == null then listen else builtins.elemAt m 1;
      reachable =
        if host == "" || host == "0.0.0.0" then
          "127.0.0.1"
        else if host == "[::]" then
          "[::1]"
        else
          host;
    in
    "http://${reachable}:${port}";

  configFileOf =
    name: d: if d.configFile != null then d.configFile else yaml.generate "forgejo-nsc-${name}.yaml" d.settings;

  hardening = {
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    DevicePolicy = "closed";
    PrivateUsers = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    RestrictAddressFamilies = [
      "AF_INET"
      "AF_INET6"
      "AF_UNIX"
      "AF_NETLINK"
    ];
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    # V8 compiles JavaScript to machine code at run time: it needs writable+executable memory.
    MemoryDenyWriteExecute = false;
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
    ];
    SystemCallErrorNumber = "EPERM";
    SystemCallArchitectures = "native";
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";
    UMask = "0077";
  };

  # The local PostgreSQL: one database per daemon, owned by the daemon's (dynamic) user, reached
  # over the Unix socket with peer authentication: no password anywhere.
  localPgUrl = name: "postgres://forgejo-nsc-${name}@/forgejo-nsc-${name}?host=/run/postgresql";
  usesPostgres = d: cfg.postgresql.createLocally || d.postgresUrlFile != null;

  serviceFor = name: d: extraPath: {
    description = "forgejo-nsc ${name}";
    wantedBy = [ "multi-user.target" ];
    wants = [ "network-online.target" ];
    after = [ "network-online.target" ] ++ lib.optional cfg.postgresql.createLocally "postgresql.service";
    requires = lib.optional cfg.postgresql.createLocally "postgresql.service";
    path = extraPath;
    environment = {
      NODE_ENV = "production";
      NS_DO_NOT_UPDATE = "1";
      # nsc keeps its config under $HOME and caches under XDG_CACHE_HOME.
      HOME = "/var/lib/forgejo-nsc-${name}";
      XDG_CACHE_HOME = "/var/cache/forgejo-nsc-${name}";
    };
    restartTriggers = [ (configFileOf name d) ];
    serviceConfig = hardening // {
      Type = "simple";
      ExecStartPre = "${lib.getExe' d.package "forgejo-nsc-${name}"} --config ${configFileOf name d} --check";
      ExecStart = "${lib.getExe' d.package "forgejo-nsc-${name}"} --config ${configFileOf name d}";
      DynamicUser = true;
      StateDirectory = "forgejo-nsc-${name}";
      StateDirectoryMode = "0700";
      CacheDirectory = "forgejo-nsc-${name}";
      CacheDirectoryMode = "0700";
      WorkingDirectory = "/var/lib/forgejo-nsc-${name}";
      LoadCredential =
        lib.mapAttrsToList (cred: file: "${cred}:${file}") d.credentials
        ++ lib.optional (d.postgresUrlFile != null) "postgres-url:${d.postgresUrlFile}";
      EnvironmentFile = lib.optional (d.environmentFile != null) d.environmentFile;
      Restart = "on-failure";
      RestartSec = "5s";
      # The daemon gets SIGTERM and stops on its own (in-flight `nsc` calls included); whatever is
      # left is killed when the stop timeout runs out.
      KillMode = "mixed";
      TimeoutStopSec = "90s";
      # Room for http.max_connections (512) plus the nsc processes, their pipes and the state
      # database; systemd's default soft limit is 1024.
      LimitNOFILE = 65536;
    };
  };
in
{
  options.services.forgejo-nsc = {
    dispatcher = daemonOptions "dispatcher" // {
      nscPackage = mkOption {
        type = types.nullOr types.package;
        default = null;
        example = literalExpression "forgejo-nsc.packages.\${system}.nsc";
        description = ''
          The nsc CLI the dispatcher runs; sets namespace.nsc_binary. The flake's `nsc` package
          carries placeholder hashes until they are pinned (see nix/nsc.nix). Leave null when
          using the Compute API only, or when nsc_binary points elsewhere.
        '';
      };
    };
    autoscaler = daemonOptions "autoscaler";

    postgresql.createLocally = mkEnableOption ''
      a PostgreSQL on this host for the daemons' records and leases (services.postgresql): one
      database per daemon, owned by the daemon's user, over the Unix socket with peer
      authentication. For replicas on several machines, point every replica at one remote database
      with `postgresUrlFile` instead (docs/replicas.md)
    '';
  };

  config = mkMerge [
    (mkIf cfg.postgresql.createLocally {
      services.postgresql = {
        enable = true;
        ensureDatabases = lib.optional cfg.dispatcher.enable "forgejo-nsc-dispatcher" ++ lib.optional cfg.autoscaler.enable "forgejo-nsc-autoscaler";
        ensureUsers = map (name: {
          inherit name;
          ensureDBOwnership = true;
        }) (lib.optional cfg.dispatcher.enable "forgejo-nsc-dispatcher" ++ lib.optional cfg.autoscaler.enable "forgejo-nsc-autoscaler");
      };
    })

    (mkIf cfg.dispatcher.enable {
      services.forgejo-nsc.dispatcher.settings = mkIf (cfg.dispatcher.configFile == null) (mkMerge [
        {
          listen = mkDefault "127.0.0.1:8080";
          namespace.nsc_binary = mkIf (cfg.dispatcher.nscPackage != null) (mkDefault (lib.getExe cfg.dispatcher.nscPackage));
        }
        # SQLite unless a PostgreSQL is configured (state_path and store exclude each other).
        (mkIf (!usesPostgres cfg.dispatcher) {
          dispatcher.state_path = mkDefault "/var/lib/forgejo-nsc-dispatcher/dispatcher.db";
        })
        (mkIf (cfg.dispatcher.postgresUrlFile != null) { dispatcher.store_file = "\${CREDENTIALS_DIRECTORY}/postgres-url"; })
        (mkIf (cfg.postgresql.createLocally && cfg.dispatcher.postgresUrlFile == null) { dispatcher.store = mkDefault (localPgUrl "dispatcher"); })
      ]);
      systemd.services.forgejo-nsc-dispatcher = serviceFor "dispatcher" cfg.dispatcher (
        lib.optional (cfg.dispatcher.nscPackage != null) cfg.dispatcher.nscPackage
      );
      warnings = map (
        p: "services.forgejo-nsc.dispatcher.settings.${p} holds a secret that ends up world-readable in the Nix store; use credentials and ${p}_file instead"
      ) (plainSecrets "" cfg.dispatcher.settings);
    })

    (mkIf cfg.autoscaler.enable {
      services.forgejo-nsc.autoscaler.settings = mkIf (cfg.autoscaler.configFile == null) (mkMerge [
        {
          listen = mkDefault "127.0.0.1:8081";
          # On the same host, talk to the local dispatcher unless told otherwise.
          dispatcher.url = mkIf (cfg.dispatcher.enable && cfg.dispatcher.configFile == null) (
            mkDefault (localUrl cfg.dispatcher.settings.listen)
          );
        }
        (mkIf (cfg.autoscaler.postgresUrlFile != null) { replicas.store_file = "\${CREDENTIALS_DIRECTORY}/postgres-url"; })
        (mkIf (cfg.postgresql.createLocally && cfg.autoscaler.postgresUrlFile == null) { replicas.store = mkDefault (localPgUrl "autoscaler"); })
      ]);
      systemd.services.forgejo-nsc-autoscaler =
        let
          service = serviceFor "autoscaler" cfg.autoscaler [ ];
        in
        service
        // {
          # serviceFor's ordering (the network, the local PostgreSQL) and the local dispatcher.
          after = service.after ++ lib.optional cfg.dispatcher.enable "forgejo-nsc-dispatcher.service";
        };
      warnings = map (
        p: "services.forgejo-nsc.autoscaler.settings.${p} holds a secret that ends up world-readable in the Nix store; use credentials and ${p}_file instead"
      ) (plainSecrets "" cfg.autoscaler.settings);
    })
  ];
}

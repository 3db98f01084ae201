# The container image, built without Docker. Same layout and entry point as the Dockerfile:
#   docker load < result; docker run … forgejo-nsc:<version> dispatcher --config /etc/forgejo-nsc/dispatcher.yaml
{
  lib,
  dockerTools,
  runCommand,
  busybox,
  cacert,
  tini,
  forgejo-runner,
  forgejo-nsc,
  nsc ? null,
}:
let
  nodejs = forgejo-nsc.passthru.nodejs;
  seconds = s: s * 1000000000;

  entrypoint = runCommand "forgejo-nsc-entrypoint" { } ''
    install -Dm755 ${../deploy/container/entrypoint.sh} "$out/bin/forgejo-nsc-entrypoint"
  '';

  # Node and nsc look the user up; uid 10001 needs a passwd entry.
  nss = dockerTools.fakeNss.override {
    extraPasswdLines = [ "forgejo-nsc:x:10001:10001:forgejo-nsc:/var/lib/forgejo-nsc:/bin/sh" ];
    extraGroupLines = [ "forgejo-nsc:x:10001:" ];
  };
in
dockerTools.buildLayeredImage {
  name = "forgejo-nsc";
  tag = forgejo-nsc.version;

  contents = [
    forgejo-nsc
    entrypoint
    busybox
    cacert
    tini
    forgejo-runner
    nss
  ] ++ lib.optional (nsc != null) nsc;

  fakeRootCommands = ''
    mkdir -p var/lib/forgejo-nsc etc/forgejo-nsc tmp
    chmod 1777 tmp
    chown 10001:10001 var/lib/forgejo-nsc
    chmod 0700 var/lib/forgejo-nsc
  '';

  config = {
    Entrypoint = [
      "${tini}/bin/tini"
      "--"
      "${entrypoint}/bin/forgejo-nsc-entrypoint"
    ];
    Cmd = [
      "dispatcher"
      "--config"
      "/etc/forgejo-nsc/dispatcher.yaml"
    ];
    User = "10001:10001";
    WorkingDir = "/var/lib/forgejo-nsc";
    Env = [
      "PATH=/bin"
      "HOME=/var/lib/forgejo-nsc"
      "NODE_ENV=production"
      "NS_DO_NOT_UPDATE=1"
      "SSL_CERT_FILE=${cacert}/etc/ssl/certs/ca-bundle.crt"
    ];
    Volumes = {
      "/var/lib/forgejo-nsc" = { };
    };
    ExposedPorts = {
      "8080/tcp" = { };
      "8081/tcp" = { };
    };
    Healthcheck = {
      Test = [
        "CMD"
        "${lib.getExe nodejs}"
        "${../deploy/container/healthcheck.mjs}"
      ];
      Interval = seconds 30;
      Timeout = seconds 5;
      StartPeriod = seconds 20;
      Retries = 3;
    };
    Labels = {
      "org.opencontainers.image.title" = "forgejo-nsc";
      "org.opencontainers.image.description" = forgejo-nsc.meta.description;
      "org.opencontainers.image.licenses" = "MIT";
    };
  };
}

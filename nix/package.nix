# forgejo-nsc: both daemons and the CLI, built from this checkout with buildNpmPackage.
# importNpmLock reads package-lock.json at evaluation time, so there is no npmDepsHash to keep in
# step with the lock file.
{
  lib,
  buildNpmPackage,
  importNpmLock,
  nodejs_22,
  makeWrapper,
  srcOnly,
}:
let
  root = ../.;
  nodejs = nodejs_22;
  package = lib.importJSON (root + "/package.json");
  packageLock = import ./npm-lock.nix { } (lib.importJSON (root + "/package-lock.json"));
in
buildNpmPackage {
  pname = "forgejo-nsc";
  inherit (package) version;
  inherit nodejs;

  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (root + "/package.json")
      (root + "/package-lock.json")
      (root + "/tsconfig.json")
      (root + "/tsconfig.build.json")
      (root + "/src")
    ];
  };

  npmDeps = importNpmLock { inherit package packageLock; };
  npmConfigHook = importNpmLock.npmConfigHook;

  nativeBuildInputs = [ makeWrapper ];

  # better-sqlite3 is native: never try to download a prebuilt binary (there is no network in the
  # sandbox), compile it with node-gyp (python3 comes with nodejs.python, the compiler with stdenv).
  env.npm_config_build_from_source = "true";

  # npm pack decides what npmInstallHook copies; without an .npmignore it would use .gitignore,
  # which lists dist/ (the build output).
  postPatch = ''
    printf '%s\n' '/src/' '/test/' '/tsconfig*.json' > .npmignore
  '';

  # importNpmLock's config hook compiled better-sqlite3 against the headers of nixpkgs' default
  # nodejs, which need not be the nodejs_22 this package runs on (a different ABI fails at load).
  preBuild = ''
    npm_config_nodedir=${srcOnly nodejs} npm rebuild better-sqlite3
  '';

  npmBuildScript = "build";

  postInstall = ''
    for program in "$out"/bin/*; do
      wrapProgram "$program" --set-default NS_DO_NOT_UPDATE 1
    done
  '';

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    "$out/bin/forgejo-nsc-dispatcher" --help
    "$out/bin/forgejo-nsc" --help > /dev/null
    ${lib.getExe nodejs} -e "require('$out/lib/node_modules/forgejo-nsc/node_modules/better-sqlite3')(':memory:').prepare('select 1').get()"
    runHook postInstallCheck
  '';

  passthru = { inherit nodejs; };

  meta = {
    description = "Ephemeral Forgejo/Gitea Actions runners on Namespace Cloud: dispatcher, autoscaler and CLI";
    license = lib.licenses.mit;
    mainProgram = "forgejo-nsc-dispatcher";
    platforms = lib.platforms.linux;
  };
}

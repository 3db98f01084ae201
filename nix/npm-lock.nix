# The project's package-lock.json is written without "resolved" URLs (npm's
# omit-lockfile-registry-resolved), but importNpmLock fetches each package from its "resolved"
# URL. Every entry here comes from the public npm registry, whose tarball URL follows from the
# package name and version, and whose "integrity" is in the lock already; so fill the URL in.
# Plain builtins, so it can be evaluated (and checked) without nixpkgs.
{ registry ? "https://registry.npmjs.org" }:
lock:
let
  last = list: builtins.elemAt list (builtins.length list - 1);
  # "node_modules/a/node_modules/@s/b" -> "@s/b"
  nameOf = path: module:
    module.name or (last (builtins.filter builtins.isString (builtins.split "node_modules/" path)));
  # "@s/b" -> "b"
  baseOf = name: last (builtins.filter builtins.isString (builtins.split "/" name));
  tarball = name: version: "${registry}/${name}/-/${baseOf name}-${version}.tgz";
  needsUrl = path: module:
    path != "" && !(module ? resolved) && !(module.link or false) && module ? version && module ? integrity;
in
lock // {
  packages = builtins.mapAttrs
    (path: module:
      if needsUrl path module
      then module // { resolved = tarball (nameOf path module) module.version; }
      else module)
    lock.packages;
}

# nsc, the Namespace Cloud CLI, from its release tarballs (one per architecture).
#
# HASHES ARE PLACEHOLDERS. They could not be looked up when this file was written (no network).
# lib.fakeHash makes the first build fail and print the real hash ("got: sha256-…"); put it here,
# or override without editing:
#   nsc.override { version = "0.0.558"; hashes = { amd64 = "sha256-…"; arm64 = "sha256-…"; }; }
# The dispatcher relies on `instance_id` in `nsc run -o json` (nsc >= 0.0.480) and on
# --wait_timeout (>= 0.0.416); see the contract notes in docs/deployment.md.
{
  lib,
  stdenvNoCC,
  fetchurl,
  autoPatchelfHook,
  version ? "0.0.558",
  hashes ? {
    amd64 = lib.fakeHash; # PLACEHOLDER: replace with the real sha256 of nsc_${version}_linux_amd64.tar.gz
    arm64 = lib.fakeHash; # PLACEHOLDER: replace with the real sha256 of nsc_${version}_linux_arm64.tar.gz
  },
}:
let
  system = stdenvNoCC.hostPlatform.system;
  arch =
    {
      x86_64-linux = "amd64";
      aarch64-linux = "arm64";
    }
    .${system} or (throw "nsc: no release tarball for ${system}");
in
stdenvNoCC.mkDerivation {
  pname = "nsc";
  inherit version;

  src = fetchurl {
    url = "https://get.namespace.so/packages/nsc/v${version}/nsc_${version}_linux_${arch}.tar.gz";
    hash = hashes.${arch};
  };
  sourceRoot = ".";

  # Go binaries are usually static; the hook does nothing then and fixes the interpreter otherwise.
  nativeBuildInputs = [ autoPatchelfHook ];

  installPhase = ''
    runHook preInstall
    install -Dm755 nsc "$out/bin/nsc"
    for helper in docker-credential-nsc bazel-credential-nsc; do
      if [ -f "$helper" ]; then install -Dm755 "$helper" "$out/bin/$helper"; fi
    done
    runHook postInstall
  '';

  meta = {
    description = "Namespace Cloud command-line interface";
    homepage = "https://namespace.so";
    license = lib.licenses.asl20;
    sourceProvenance = [ lib.sourceTypes.binaryNativeCode ];
    mainProgram = "nsc";
    platforms = [
      "x86_64-linux"
      "aarch64-linux"
    ];
  };
}

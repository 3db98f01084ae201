/** The smallest autoscaler config that parses: one Forgejo instance "fj" with one [linux] target. */
export const MINIMAL_AUTOSCALER_YAML = `
dispatcher: { url: "http://127.0.0.1:8080" }
instances:
  - name: fj
    forgejo: { base_url: "https://forgejo.example.com", token: "pat" }
    targets:
      - labels: [linux]
`;

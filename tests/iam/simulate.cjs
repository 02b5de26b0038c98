// Evaluates IAM requests with @cloud-copilot/iam-simulate (identity policies, SCPs through the OU
// chain, resource policies, permission boundaries, endpoint policies), pinned in package-lock.json.
// Reads batches on stdin, one JSON array of simulations per line; answers each line with one JSON
// array of results, in order. One process serves a whole test session (node's start-up is the cost).
const { runSimulation, runUnsafeSimulation } = require("@cloud-copilot/iam-simulate");
const path = require("node:path");
const readline = require("node:readline");

// AWS puts a key with a variable after a colon in the request context too
// (kms:EncryptionContext:<context-key>, AWS KMS Developer Guide "kms:EncryptionContext:context-key"),
// but the library only matches variables after a slash and would drop such a key. Its engine reads
// the allowed keys through this module's exports, so widen them by the request being evaluated.
const LIB = path.dirname(require.resolve("@cloud-copilot/iam-simulate"));
const contextKeys = require(path.join(LIB, "simulation_engine", "contextKeys.js"));
const keyCase = require(path.join(LIB, "context_keys", "contextKeys.js"));
const normalize = keyCase.normalizeContextKeyCase;
keyCase.normalizeContextKeyCase = async (key) => {
  const spec = await normalize(key);
  return spec.includes("${") ? key : spec; // the library would store the value under the template itself
};
const allowedKeys = contextKeys.allowedContextKeysForRequest;
let requestKeys = [];
contextKeys.allowedContextKeysForRequest = async (...args) => {
  const keys = await allowedKeys(...args);
  const templates = keys.filter((k) => k.includes("${")).map((k) => new RegExp(
    "^" + k.split(/\$\{[^}]*\}/).map((part) => part.replace(/[.*+?^$()|[\]\\{}]/g, "\\$&")).join(".+") + "$"));
  const extra = requestKeys.map((k) => k.toLowerCase()).filter((k) => templates.some((t) => t.test(k)));
  return [...keys, ...extra];
};

// Which part of the evaluation each analysis key stands for.
const PARTS = {
  identityAnalysis: "identity", sessionAnalysis: "session", resourceAnalysis: "resource", scpAnalysis: "scp",
  rcpAnalysis: "rcp", permissionBoundaryAnalysis: "boundary", endpointAnalysis: "endpoint",
};

function matched(node, part, kind, out) {
  if (Array.isArray(node)) {
    node.forEach((item) => matched(item, part, kind, out));
    return;
  }
  if (!node || typeof node !== "object") return;
  for (const [key, value] of Object.entries(node)) {
    const here = PARTS[key] || part;
    if (key === kind && Array.isArray(value)) {
      for (const s of value) {
        const statement = s.statement ? JSON.parse(JSON.stringify(s.statement)) : {}; // an ORM object
        out.push({ part: here, policy: s.policyId || null, sid: statement.Sid || null });
      }
    } else if (typeof value === "object") {
      matched(value, here, kind, out);
    }
  }
}

// The library's rule for a wildcard resource (one result per resource type), applied to one part.
function combine(results) {
  if (results.includes("Allowed")) return "Allowed";
  if (results.length && results.every((r) => r === "ExplicitlyDenied")) return "ExplicitlyDenied";
  return "ImplicitlyDenied";
}

async function one(simulation, lenient) {
  requestKeys = Object.keys(simulation.request.contextVariables || {});
  const done = await runSimulation(simulation, { simulationMode: "Strict" });
  if (done.resultType === "error" && lenient && done.errors.message === "no.resource.types") {
    // An ARN no resource type of the service matches (AWS-owned SSM documents and public parameters
    // have no account; the mocks' synthesized ARNs are not all AWS-shaped): judged without the
    // resource-type and context-key checks, and flagged so a strict caller can refuse it.
    const result = runUnsafeSimulation(simulation, { simulationMode: "Strict" });
    return { result, parts: { identity: result, resource: result }, deny: [], allow: [],
             ignoredContextKeys: [], untypedResource: true };
  }
  if (done.resultType === "error") {
    return { result: "Error", errors: done.errors };
  }
  const results = done.resultType === "single" ? [done.result] : done.results;
  const deny = [];
  const allow = [];
  const ignored = new Set();
  for (const r of results) {
    matched(r.analysis, null, "denyStatements", deny);
    matched(r.analysis, null, "allowStatements", allow);
    (r.ignoredContextKeys || []).forEach((k) => ignored.add(k));
  }
  const parts = {};
  for (const [key, part] of Object.entries(PARTS)) {
    const here = results.map((r) => r.analysis[key] && r.analysis[key].result).filter(Boolean);
    if (here.length) parts[part] = combine(here);
  }
  return { result: done.overallResult, parts, deny, allow, ignoredContextKeys: [...ignored].sort() };
}

const lines = readline.createInterface({ input: process.stdin, terminal: false });
let queue = Promise.resolve();
lines.on("line", (line) => {
  if (!line.trim()) return;
  queue = queue.then(async () => {
    const batch = JSON.parse(line);
    const answers = [];
    for (const { lenient, ...simulation } of batch) {
      try {
        answers.push(await one(simulation, Boolean(lenient)));
      } catch (err) {
        answers.push({ result: "Error", errors: { message: String(err && err.stack ? err.stack : err) } });
      }
    }
    process.stdout.write(JSON.stringify(answers) + "\n");
  });
});

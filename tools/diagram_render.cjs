// Renders Graphviz DOT (stdin) to SVG (stdout) with @viz-js/viz, Graphviz compiled to WebAssembly:
// no `dot` binary and no network needed. Usage: node diagram_render.cjs < estate.dot > estate.svg
const { instance } = require("@viz-js/viz");

let dot = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (dot += chunk));
process.stdin.on("end", async () => {
  try {
    const viz = await instance();
    const result = viz.render(dot, { format: "svg", engine: "dot" });
    for (const e of result.errors) process.stderr.write(`${e.level || "error"}: ${e.message}\n`);
    if (result.status !== "success") process.exit(2);
    process.stdout.write(result.output);
  } catch (err) {
    process.stderr.write(String(err && err.stack ? err.stack : err));
    process.exit(2);
  }
});

// Writes the params schemas of the OpenClaw methods Mission Control calls, as the gateway
// itself checks them (closed TypeBox objects: an unknown property is INVALID_REQUEST), to
// openclaw_params.json beside this file. Run from an installed `openclaw` package:
//   node tests/gateways/data/openclaw_params.mjs <path to node_modules/openclaw>
// The fake gateway (tests/gateways/fake.py) refuses what these schemas refuse.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const METHODS = {
  "agents.list": "AgentsListParamsSchema",
  "sessions.list": "SessionsListParamsSchema",
  "sessions.subscribe": null, // no params schema: takes {limit?}
  "sessions.reset": "SessionsResetParamsSchema",
  "chat.history": "ChatHistoryParamsSchema",
  "chat.send": "ChatSendParamsSchema",
  "chat.abort": "ChatAbortParamsSchema",
  "agent": "AgentParamsSchema",
  "cron.list": "CronListParamsSchema",
  "cron.runs": "CronRunsParamsSchema",
  "cron.run": "CronRunParamsSchema",
  "cron.update": "CronUpdateParamsSchema",
};

const root = process.argv[2];
const dist = join(root, "dist");
const wanted = new Set(Object.values(METHODS).filter(Boolean));
const found = {};
for (const file of readdirSync(dist).filter((f) => f.endsWith(".mjs"))) {
  const text = readFileSync(join(dist, file), "utf8");
  const exported = text.match(/export \{([^}]*)\};?\s*$/);
  if (!exported || ![...wanted].some((name) => exported[1].includes(name))) continue;
  const alias = {};
  for (const [, name, as] of exported[1].matchAll(/([\w$]+) as ([\w$]+)/g)) alias[name] = as;
  const module = await import(pathToFileURL(join(dist, file)).href);
  for (const name of wanted) {
    if (!found[name] && alias[name] && module[alias[name]]) found[name] = module[alias[name]];
  }
  if (Object.keys(found).length === wanted.size) break;
}
const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version;
const out = { openclaw: version, params: {} };
for (const [method, name] of Object.entries(METHODS)) {
  if (name && !found[name]) throw new Error(`${name} not found in ${dist}`);
  out.params[method] = name ? JSON.parse(JSON.stringify(found[name])) : null;
}
const here = dirname(fileURLToPath(import.meta.url));
writeFileSync(join(here, "openclaw_params.json"), JSON.stringify(out) + "\n");
console.log(`wrote ${Object.keys(out.params).length} method schemas of openclaw ${version}`);

// openai_client.mjs -- drives a running `sglc serve` with the official
// `openai` npm package: models, completions, chat, streaming chat with
// usage, JSON-schema response_format, and an error surfacing as a 400
// APIError. $SGLC_BASE is the server's /v1 URL, $SGLC_KEY its API key.
// Prints "ok - ..." per check and "N passed, N failed"; exit 1 on failure.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.SGLC_BASE, apiKey: process.env.SGLC_KEY, maxRetries: 0, timeout: 60000 });
let passed = 0, failed = 0;
function check(what, cond, detail) {
  if (cond) { passed++; console.log(`ok - ${what}`); }
  else { failed++; console.log(`FAIL - ${what}${detail ? ": " + JSON.stringify(detail).slice(0, 400) : ""}`); }
}

async function main() {
  const models = await client.models.list();
  const model = models.data[0]?.id;
  check("models.list", model === "tiny", models.data);

  const c = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
  check("completions.create", c.object === "text_completion" && c.choices[0].text.length > 0 &&
        c.usage.completion_tokens === 8 && c.choices[0].finish_reason === "length", c);

  const chat = await client.chat.completions.create({
    model, max_tokens: 10, temperature: 0, n: 2,
    messages: [{ role: "system", content: "You tell stories." }, { role: "user", content: "A story, please." }],
  });
  check("chat.completions.create n=2", chat.choices.length === 2 && chat.choices[0].message.role === "assistant" &&
        typeof chat.choices[0].message.content === "string" && chat.usage.prompt_tokens > 0, chat);

  const stream = await client.chat.completions.create({
    model, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
    messages: [{ role: "user", content: "A story, please." }],
  });
  let text = "", usage = null, finish = null, chunks = 0;
  for await (const ch of stream) {
    chunks++;
    if (ch.usage) usage = ch.usage;
    for (const choice of ch.choices) {
      text += choice.delta?.content ?? "";
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  const ref = await client.chat.completions.create({ model, max_tokens: 12, temperature: 0,
    messages: [{ role: "user", content: "A story, please." }] });
  check("streaming chat == non-streaming text", text === ref.choices[0].message.content, { text, ref: ref.choices[0].message.content });
  check("streaming chat usage + finish", usage && usage.completion_tokens === 12 && finish === "length" && chunks > 3, { usage, finish, chunks });
  check("usage.prompt_tokens_details.cached_tokens", ref.usage.prompt_tokens_details?.cached_tokens > 0, ref.usage);

  const cs = await client.completions.create({ model, prompt: "The cat", max_tokens: 6, temperature: 0, stream: true });
  let ctext = "";
  for await (const ch of cs) ctext += ch.choices[0]?.text ?? "";
  check("streaming completions", ctext.length > 0, ctext);

  const schema = { type: "object", properties: { name: { type: "string", maxLength: 12 }, age: { type: "integer" } },
                   required: ["name", "age"], additionalProperties: false };
  const js = await client.chat.completions.create({
    model, max_tokens: 150, temperature: 0, messages: [{ role: "user", content: "Describe a person." }],
    response_format: { type: "json_schema", json_schema: { name: "person", schema } },
  });
  let obj = null;
  try { obj = JSON.parse(js.choices[0].message.content); } catch (e) { /* checked below */ }
  check("response_format json_schema -> schema-valid JSON", obj && typeof obj.name === "string" && Number.isInteger(obj.age) &&
        Object.keys(obj).join() === "name,age", js.choices[0].message.content);

  const jo = await client.chat.completions.create({
    model, max_tokens: 100, messages: [{ role: "user", content: "JSON please." }], response_format: { type: "json_object" },
  });
  let o2 = null;
  try { o2 = JSON.parse(jo.choices[0].message.content); } catch (e) { /* checked below */ }
  check("response_format json_object -> a JSON object", jo.choices[0].finish_reason !== "stop" || (o2 && typeof o2 === "object"),
        jo.choices[0]);

  try {
    await client.chat.completions.create({ model, messages: [{ role: "user", content: "x" }], temperature: 5 });
    check("invalid temperature -> 400", false);
  } catch (e) {
    check("invalid temperature -> 400 APIError naming the field", e instanceof OpenAI.APIError && e.status === 400 &&
          String(e.message).includes("temperature"), String(e));
  }
  const bad = new OpenAI({ baseURL: process.env.SGLC_BASE, apiKey: "wrong", maxRetries: 0 });
  try {
    await bad.models.list();
    check("wrong key -> 401", false);
  } catch (e) {
    check("wrong key -> 401 AuthenticationError", e instanceof OpenAI.AuthenticationError, String(e));
  }
}

main().catch((e) => { failed++; console.log(`FAIL - exception: ${e}`); }).finally(() => {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
});

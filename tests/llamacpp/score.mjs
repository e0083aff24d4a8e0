// Loads a GGUF file with llama.cpp (node-llama-cpp's prebuilt CPU build,
// never compiled here) and prints, as JSON, the model's raw next-token
// logits after each token of a sequence:
// {"n_vocab": V, "vocabulary": "bpe", "logits": [[...], ...]}.
//   node score.mjs MODEL.gguf TOKENS.json
import {readFileSync} from "node:fs";
import {getLlama} from "node-llama-cpp";

const [modelPath, tokensPath] = process.argv.slice(2);
const tokens = JSON.parse(readFileSync(tokensPath, "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const context = await model.createContext({contextSize: Math.max(64, tokens.length + 8),
                                           batchSize: tokens.length, threads: 2});
const sequence = context.getSequence();
const input = tokens.map((t) => [t, {generateNext: {logits: true}}]);
const results = await sequence.controlledEvaluate(input);
// Every token's logit is returned: their count is the vocabulary's size.
const nVocab = results.length > 0 ? results[0].next.logits.size : 0;
const logits = results.map((r) => {
  const row = new Array(nVocab).fill(0);
  for (const [token, value] of r.next.logits) row[token] = value;
  return row;
});
process.stdout.write(JSON.stringify({n_vocab: nVocab, vocabulary: model.vocabularyType, logits}));
await context.dispose();
await model.dispose();
await llama.dispose();

// Loads a GGUF file with llama.cpp (node-llama-cpp's prebuilt CPU build,
// never compiled here) and scores token sequences with it. TOKENS.json is
//  - a list of tokens: prints the model's raw next-token logits after each,
//    {"n_vocab": V, "vocabulary": "bpe", "logits": [[...], ...]};
//  - {"windows": [[...], ...]}: each window evaluated from an empty
//    context, prints {"n_vocab": V, "nll": N, "count": C}, N the summed
//    -log p(token i + 1 | tokens 0..i) over every window and position;
//  - {"tokenize": TEXT}: prints {"tokens": [...]}, TEXT as llama.cpp's
//    tokenizer reads it (no BOS, special tokens as plain text), loading
//    only the file's vocabulary.
//   node score.mjs MODEL.gguf TOKENS.json
import {readFileSync} from "node:fs";
import {getLlama} from "node-llama-cpp";

const [modelPath, tokensPath] = process.argv.slice(2);
const input = JSON.parse(readFileSync(tokensPath, "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
if (typeof input.tokenize === "string") {
  const vocabulary = await llama.loadModel({modelPath, vocabOnly: true});
  process.stdout.write(JSON.stringify({tokens: Array.from(vocabulary.tokenize(input.tokenize))}));
  await vocabulary.dispose();
  await llama.dispose();
  process.exit(0);
}
const windows = Array.isArray(input) ? [input] : input.windows;
const longest = Math.max(...windows.map((w) => w.length));
const model = await llama.loadModel({modelPath});
const context = await model.createContext({contextSize: Math.max(64, longest + 8),
                                           batchSize: longest, threads: 2});
const sequence = context.getSequence();

// The logits after each token of `tokens`, as arrays over the vocabulary.
async function logitsAfter(tokens) {
  await sequence.clearHistory();
  const results = await sequence.controlledEvaluate(
      tokens.map((t) => [t, {generateNext: {logits: true}}]));
  // Every token's logit is returned: their count is the vocabulary's size.
  return results.map((r) => {
    const row = new Array(r.next.logits.size).fill(0);
    for (const [token, value] of r.next.logits) row[token] = value;
    return row;
  });
}

function negativeLogLikelihood(row, target) {
  const top = Math.max(...row);
  const sum = row.reduce((s, v) => s + Math.exp(v - top), 0);
  return top + Math.log(sum) - row[target];
}

let output;
if (Array.isArray(input)) {
  const logits = await logitsAfter(input);
  output = {n_vocab: logits.length > 0 ? logits[0].length : 0,
            vocabulary: model.vocabularyType, logits};
} else {
  let nll = 0, count = 0, nVocab = 0;
  for (const window of windows) {
    const logits = await logitsAfter(window.slice(0, -1));
    nVocab = logits[0].length;
    logits.forEach((row, i) => { nll += negativeLogLikelihood(row, window[i + 1]); });
    count += logits.length;
  }
  output = {n_vocab: nVocab, nll, count};
}
process.stdout.write(JSON.stringify(output));
await context.dispose();
await model.dispose();
await llama.dispose();

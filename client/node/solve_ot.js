// Submits one entropic OT problem to solverd from Node.js and watches it to
// the end: @grpc/grpc-js with the API's .proto files loaded at run time.
//   npm install && node solve_ot.js [HOST:PORT]
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = process.env.SOLVERD_PROTO_ROOT || path.join(__dirname, '..', '..', 'proto');
const definition = protoLoader.loadSync('solverd/v1/jobs.proto', {
  includeDirs: [PROTO_ROOT],
  keepCase: true,  // field names as in the .proto (job_id, transport_cost)
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});
const v1 = grpc.loadPackageDefinition(definition).solverd.v1;

function randomCost(n, m) {
  const values = [];
  for (let k = 0; k < n * m; ++k) values.push(Math.random());
  return { shape: [n, m], values };
}

function main() {
  const address = process.argv[2] || '127.0.0.1:50051';
  const client = new v1.SolverService(address, grpc.credentials.createInsecure());
  const spec = { ot: { cost: randomCost(20, 30), reg: 0.05, tolerance: 1e-9 } };
  client.SubmitJob({ spec }, { deadline: Date.now() + 10000 }, (err, job) => {
    if (err) {
      console.error(`SubmitJob: ${err.code} ${err.details}`);
      process.exit(1);
    }
    let result = null;
    let state = null;
    const events = client.WatchJob({ job_id: job.id });
    events.on('data', (event) => {
      if (event.kind === 'progress') {
        const p = event.progress;
        console.log(`${p.stage} iteration ${p.iteration} marginal error ${p.residual}`);
      } else if (event.kind === 'result') {
        result = event.result.ot;
      } else if (event.kind === 'state') {
        state = event.state;
      }
    });
    events.on('error', (e) => {
      console.error(`WatchJob: ${e.code} ${e.details}`);
      process.exit(1);
    });
    events.on('end', () => {
      if (state === null || state.state !== 'JOB_STATE_SUCCEEDED' || result === null) {
        console.error(`job ${job.id} ended ${state && state.state}: ${state && state.error_message}`);
        process.exit(1);
      }
      console.log(`job ${job.id} SUCCEEDED: transport cost ${result.transport_cost}, ` +
                  `marginal error ${result.marginal_error}, ${result.iterations} iterations`);
      client.close();
    });
  });
}

main();

// A Firestore emulator for machines without gcloud: @firestore-emulator/server (gRPC, in memory) bound to
// loopback on the port given as the first argument (0: any free port); prints host:port once listening.
const { FirestoreServer } = require("@firestore-emulator/server");
const { ServerCredentials } = require("@grpc/grpc-js");

const server = new FirestoreServer();
const wanted = Number(process.argv[2] || 0);
// The package's start() binds 0.0.0.0; bind loopback ourselves so nothing is reachable from outside.
server.server.bindAsync(`127.0.0.1:${wanted}`, ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.error(err);
    process.exit(1);
  }
  console.log(`127.0.0.1:${port}`);
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    server.stop();
    process.exit(0);
  });
}

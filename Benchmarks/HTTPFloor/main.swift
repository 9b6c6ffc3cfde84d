// The floor under the registry's HTTP figures: Hummingbird on the same machine, the same
// connections and the same request bytes, doing nothing a call needs. `POST /v1/calls` reads
// the whole body, as the registry does, and answers 201 with a small JSON body; no parsing, no
// signature, no database. Benchmarks/http.sh runs it beside `provenance serve` (release build).
//
// Usage: http-floor PORT
import Foundation
import Hummingbird

guard CommandLine.arguments.count == 2, let port = Int(CommandLine.arguments[1]), (1...65_535).contains(port) else {
    print("usage: http-floor PORT")
    exit(2)
}
let router = Router()
router.get("/healthz") { _, _ in "ok" }
router.post("/v1/calls") { request, _ -> Response in
    let body = try await request.body.collect(upTo: 4 * 1024 * 1024)
    var answer = ByteBuffer()
    answer.writeString(#"{"received":\#(body.readableBytes)}"#)
    return Response(status: .created, headers: [.contentType: "application/json"], body: .init(byteBuffer: answer))
}
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "http-floor"))
try await app.runService()

import Crypto
import Foundation
@testable import ProvenanceCore
import Testing

/// A token's secret is stored as the hex SHA-256 of its UTF-8. Hashing it in place must give the
/// same text as before, or every token already issued would stop working.
@Suite struct TokenHashTests {
    @Test func theHashIsTheHexSHA256OfTheSecretsUTF8() {
        let long = String(repeating: "prov_0123456789abcdef", count: 50)
        let secrets = ["", "prov_abc", "José 李雷 🙂", long, String(long.dropFirst(7).prefix(40)), "tab\there"]
        for secret in secrets {
            let expected = SHA256.hash(data: Array(secret.utf8)).map { String(format: "%02x", $0) }.joined()
            #expect(Store.tokenHash(secret) == expected, "\(secret.prefix(20))")
        }
        // The one every test store's tokens were hashed to before: the SHA-256 of "abc".
        #expect(Store.tokenHash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}

internal import CGit2
public import Foundation

/// A reference as git's `info/refs` lists it: its name, the object it points to and, for an
/// annotated tag, the object the tag peels to.
public struct AdvertisedReference: Sendable, Equatable {
    public var name: String
    public var target: ObjectID
    /// The non-tag object an annotated tag (or a chain of them) points to; nil otherwise.
    public var peeled: ObjectID?
}

extension Repository {
    /// Every direct reference under `refs/` (loose and packed), sorted by name, with annotated
    /// tags peeled: what `git update-server-info` writes to `info/refs`.
    public func advertisedReferences() throws -> [AdvertisedReference] {
        var iterator: OpaquePointer?
        try check("git_reference_iterator_new", git_reference_iterator_new(&iterator, pointer))
        defer { git_reference_iterator_free(iterator) }
        var result: [AdvertisedReference] = []
        var reference: OpaquePointer?
        while true {
            let status = git_reference_next(&reference, iterator)
            if status == GIT_ITEROVER.rawValue { break }
            try check("git_reference_next", status)
            defer { git_reference_free(reference) }
            // Symbolic references (HEAD lives outside refs/ anyway) are not listed, as git does not.
            guard git_reference_type(reference) == GIT_REFERENCE_DIRECT, let target = git_reference_target(reference),
                  let namePointer = git_reference_name(reference) else { continue }
            let name = String(cString: namePointer)
            guard name.hasPrefix("refs/") else { continue }
            let id = ObjectID(target)
            var peeled: ObjectID?
            if objectType(id) == .tag {
                var object: OpaquePointer?
                try check("git_reference_peel", git_reference_peel(&object, reference, GIT_OBJECT_ANY))
                defer { git_object_free(object) }
                peeled = ObjectID(git_object_id(object))
            }
            result.append(AdvertisedReference(name: name, target: id, peeled: peeled))
        }
        // git sorts by the bytes of the name.
        return result.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
    }

    /// The folder of the repository's object database (`objects/`).
    public var objectDatabaseDirectory: URL { objectsDirectory }
}

/// Helpers shared by the SimKO.Data tests: the shared datasets (skipped with a message when absent) and temp files.
module SimKO.Data.Tests.Support

open System
open System.IO
open Expecto
open SimKO.Data.Datasets

/// The shared datasets folder, or None when this clone has no ../shared beside it.
let datasetRoot: string option = DatasetRoot.TryFind() |> Option.ofObj

let private skipMessage () =
    sprintf "the shared datasets are absent (looked at %s); put ../shared beside the repository or set %s to run this test"
        (DatasetRoot.Default()) DatasetRoot.EnvironmentVariable

/// A test that reads ../shared/datasets; skipped with a clear message when the folder is absent.
let datasetTest name (body: string -> unit) =
    test name {
        match datasetRoot with
        | Some root -> body root
        | None -> skiptest (skipMessage ())
    }

/// The shared Qwen3 tokenizer fixture folder, when present.
let fixtureDir () =
    datasetRoot |> Option.map (fun root -> Path.GetFullPath(Path.Combine(root, "..", "fixtures", "qwen3-tokenizer")))

/// Writes a temporary file with the given extension and content, runs the body on its path, deletes it.
let withTempFile (ext: string) (content: string) (body: string -> unit) =
    let path = Path.Combine(Path.GetTempPath(), sprintf "simko-%s%s" (Guid.NewGuid().ToString("N")) ext)
    File.WriteAllText(path, content)
    try body path finally File.Delete path

/// Runs the body and returns the DataFormatException it throws (fails the test when it throws none).
let expectDataError (body: unit -> unit) : SimKO.Data.DataFormatException =
    try
        body ()
        failtest "expected a DataFormatException, got none"
    with :? SimKO.Data.DataFormatException as e -> e

/// Asserts that a message contains every fragment, printing the message on failure.
let expectMentions (message: string) (fragments: string list) =
    for f in fragments do
        Expect.stringContains message f (sprintf "the message should mention '%s'" f)

/// The design card's dependency rules, read from the sources: the pure layers know nothing of the host,
/// and the host's folders do not import each other in circles.
module SimKO.Tests.ArchitectureTests

open System.IO
open System.Text.RegularExpressions
open Expecto

let private sources (root: string) (project: string) (ext: string) =
    let dir = Path.Combine(root, "src", project)
    Directory.EnumerateFiles(dir, "*" + ext, SearchOption.AllDirectories)
    |> Seq.filter (fun f -> not (f.Contains $"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}" || f.Contains $"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
    // the code only: whole-line comments (`//`, `///`) may name anything
    |> Seq.map (fun f -> Path.GetRelativePath(dir, f), File.ReadAllLines f |> Array.filter (fun l -> not (l.TrimStart().StartsWith "//")) |> String.concat "\n")
    |> List.ofSeq

/// The host folder → the other host folders its files name (`using SimKO.Host.X` or a qualified `SimKO.Host.X.`).
let folderImports (files: (string * string) list) =
    let folders = files |> List.choose (fun (rel, _) -> match Path.GetDirectoryName rel with "" -> None | d -> Some(d.Split(Path.DirectorySeparatorChar).[0])) |> Set.ofList
    files
    |> List.choose (fun (rel, text) ->
        match Path.GetDirectoryName rel with
        | "" -> None
        | d ->
            let own = d.Split(Path.DirectorySeparatorChar).[0]
            let named = [ for m in Regex.Matches(text, @"SimKO\.Host\.([A-Za-z]+)") -> m.Groups[1].Value ] |> List.filter (fun n -> n <> own && folders.Contains n)
            Some(own, named))
    |> List.groupBy fst
    |> List.map (fun (f, xs) -> f, xs |> List.collect snd |> Set.ofList)
    |> Map.ofList

/// A cycle of the import graph as a path a → … → a, if there is one.
let findCycle (graph: Map<string, Set<string>>) =
    let rec walk (path: string list) (node: string) =
        if List.contains node path then Some(List.rev (node :: path) |> List.skipWhile ((<>) node))
        else
            graph |> Map.tryFind node |> Option.defaultValue Set.empty |> Seq.tryPick (walk (node :: path))
    graph |> Map.toSeq |> Seq.tryPick (fun (n, _) -> walk [] n)

let tests =
    testList "architecture" [
        testCase "the cycle finder finds a planted cycle and passes a chain" <| fun () ->
            Expect.equal (findCycle (Map [ "A", set [ "B" ]; "B", set [ "C" ]; "C", set [ "A" ] ])) (Some [ "A"; "B"; "C"; "A" ]) "planted cycle"
            Expect.equal (findCycle (Map [ "A", set [ "B" ]; "B", set [ "C" ] ])) None "a chain"
        testCase "the host's folders do not import each other in circles" <| fun () ->
            match Checks.readme () with
            | None -> skiptest "no SimKO.sln above the test binary"
            | Some (root, _) ->
                let graph = folderImports (sources root "SimKO.Host" ".cs")
                Expect.isGreaterThan graph.Count 5 "the host's folders were read"
                match findCycle graph with
                | Some path -> failtestf "host folders import each other in a circle: %s" (String.concat " → " path)
                | None -> ()
        testCase "Math and Data know nothing of the host or the CLI" <| fun () ->
            match Checks.readme () with
            | None -> skiptest "no SimKO.sln above the test binary"
            | Some (root, _) ->
                for project, ext in [ "SimKO.Math", ".fs"; "SimKO.Data", ".cs" ] do
                    let files = sources root project ext
                    Expect.isNonEmpty files $"{project} sources read"
                    for rel, text in files do
                        for bad in [ "SimKO.Host"; "SimKO.Cli" ] do
                            Expect.isFalse (Regex.IsMatch(text, $@"\b{Regex.Escape bad}\b")) $"{project}/{rel} names {bad}"
        testCase "the training loop knows nothing of the CLI (it takes its settings value, not the run spec)" <| fun () ->
            match Checks.readme () with
            | None -> skiptest "no SimKO.sln above the test binary"
            | Some (root, _) ->
                let training = sources root "SimKO.Host" ".cs" |> List.filter (fun (rel, _) -> rel.StartsWith("Training" + string Path.DirectorySeparatorChar))
                Expect.isGreaterThan training.Length 3 "the Training folder's sources read"
                // the assembly, or one of its modules by name (a `global using SimKO.Cli` elsewhere would let a file
                // write `RunSpec.TrainSpec` without naming the assembly)
                let modules =
                    sources root "SimKO.Cli" ".fs"
                    |> List.collect (fun (_, text) -> [ for m in Regex.Matches(text, @"(?m)^module SimKO\.Cli\.(\w+)") -> m.Groups[1].Value ])
                Expect.contains modules "RunSpec" "the CLI's modules read"
                for rel, text in training do
                    Expect.isFalse (Regex.IsMatch(text, @"\bSimKO\.Cli\b")) $"SimKO.Host/{rel} names SimKO.Cli"
                    for m in modules do
                        Expect.isFalse (Regex.IsMatch(text, $@"(?<![\w.]){m}\.")) $"SimKO.Host/{rel} names the CLI's module {m}"
    ]

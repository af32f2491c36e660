/// User reward functions with verl's signature (issue 23 §2), run in the sandbox pool: scores and a
/// dict's extra keys as metrics; a function that raises, loops forever, returns a string or NaN,
/// prints megabytes, reads the repository or opens a socket gets an error naming the file, the
/// traceback's line and the sample (reward 0, or the run stops with reward_errors=fail), and the
/// other samples of its batch are still scored.
module SimKO.Data.Tests.RewardFunctionTests

open System
open System.IO
open Expecto
open SimKO.Data.Rewards
open SimKO.Data.Tests.SandboxFixture

let private inFolder (f: string -> unit) =
    let dir = Path.Combine(Path.GetTempPath(), "simko-reward-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    try f dir finally Directory.Delete(dir, true)

let private hostile (repo: string) = $"""import math, socket

def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    if solution_str == "raise":
        raise ValueError("no answer found")
    if solution_str == "loop":
        while True:
            pass
    if solution_str == "string":
        return "1.0"
    if solution_str == "nan":
        return float("nan")
    if solution_str == "print":
        print("x" * (4 << 20))
    if solution_str == "repo":
        return len(open({py (Path.Combine(repo, "SimKO.sln"))}).read())
    if solution_str == "socket":
        socket.create_connection(("1.1.1.1", 80), timeout=2)
    ok = solution_str.strip() == ground_truth
    return {{"score": 1.0 if ok else 0.0, "acc": float(ok), "index": extra_info["index"], "pred": solution_str}}
"""

/// The 1-based line of the first line of <paramref name="source"/> containing <paramref name="text"/>.
let private lineOf (source: string) (text: string) =
    (source.Split('\n') |> Array.findIndex (fun l -> l.Contains text)) + 1

let tests =
    testList "reward functions" [
        testCase "scores, extra keys as metrics, and every hostile sample named with file, line and sample while the rest are scored" <| fun () ->
            let pool = pool ()
            inFolder (fun dir ->
                let source = hostile (repoRoot ())
                let path = Path.Combine(dir, "reward.py")
                File.WriteAllText(path, source)
                let fn = RewardFunction.Load path
                let sample s i = RewardSample("gsm8k", s, "42", $"{{\"index\": {i}}}")
                let cases = [| "42"; "raise"; "41"; "loop"; "string"; "nan"; "print"; "repo"; "socket"; " 42 " |]
                let results = fn.Score(pool, cases |> Array.mapi (fun i s -> sample s i))
                let error i = match results.[i].Error with null -> failtestf "sample %d (%s) has no error" i cases.[i] | e -> e
                Expect.equal [ for i in [ 0; 2; 9 ] -> results.[i].Score, results.[i].Error ] [ 1.0, null; 0.0, null; 1.0, null ] "good samples scored, also after hostile ones in the batch"
                Expect.equal (results.[0].Extra |> Seq.map (fun kv -> kv.Key, kv.Value) |> List.ofSeq) [ "acc", 1.0; "index", 0.0 ] "numeric extra keys"
                Expect.equal (List.ofSeq results.[0].NotNumbers) [ "pred" ] "a non-number extra key is noted"
                let named i (line: string) (parts: string list) =
                    let e = error i
                    Expect.stringStarts e (line + ": ") (sprintf "%s: starts with the file and line" cases.[i])
                    for p in parts do Expect.stringContains e p (sprintf "%s: says what happened" cases.[i])
                    Expect.stringContains e (sprintf "sample %d (data_source 'gsm8k', ground_truth '42', response '%s')" i cases.[i]) "names the sample"
                    Expect.equal results.[i].Score 0.0 "counts as 0"
                named 1 (sprintf "%s:%d: raise ValueError(\"no answer found\")" path (lineOf source "raise ValueError")) [ "ValueError: no answer found" ]
                named 3 path []
                Expect.isTrue ((error 3).Contains "ran past its CPU time limit" || (error 3).Contains "timed out (no result within 3 s)") "an endless loop: CPU or wall limit"
                named 4 path [ "returned str ('1.0'), expected a number" ]
                named 5 path [ "returned nan, expected a finite number" ]
                named 6 path [ "printed more than 65536 bytes" ]
                named 7 (sprintf "%s:%d" path (lineOf source "SimKO.sln")) [ "FileNotFoundError" ]
                named 8 (sprintf "%s:%d" path (lineOf source "create_connection")) [ "OSError"; "unreachable" ]
                let metrics = RewardFunction.Metrics results
                Expect.equal metrics.["reward/acc"] (2.0 / 3.0) "reward/acc is the mean over the samples that returned it"
                Expect.equal metrics.["reward/errors"] 7.0 "errors counted"
                let warnings = Collections.Generic.List<string>()
                let scores = RewardFunction.Scores(results, false, Action<string>(fun w -> warnings.Add w))
                Expect.equal scores.[0] 1.0 "score kept"
                Expect.equal warnings.Count 8 "one warning per error and one for the non-number key"
                Expect.throwsT<RewardFunctionException> (fun () -> RewardFunction.Scores(results, true, Action<string>(ignore)) |> ignore) "reward_errors=fail stops")
        testCase "a file that does not compile, lacks the function or is missing is an error naming it" <| fun () ->
            let pool = pool ()
            inFolder (fun dir ->
                let path = Path.Combine(dir, "broken.py")
                File.WriteAllText(path, "def compute_score(a, b, c, extra_info=None):\n    return (\n")
                let msg (f: unit -> unit) = try f (); failtest "expected a RewardFunctionException" with :? RewardFunctionException as e -> e.Message
                let samples = [| RewardSample("d", "1", "1") |]
                Expect.stringContains (msg (fun () -> (RewardFunction.Load path).Score(pool, samples) |> ignore)) (path + ":") "syntax error names the file"
                File.WriteAllText(path, "def score(a, b, c, extra_info=None):\n    return 1\n")
                Expect.stringContains (msg (fun () -> (RewardFunction.Load path).Score(pool, samples) |> ignore)) "has no function 'compute_score'" "no such function"
                let named = RewardFunction.Load(path + ":score")
                let scored = named.Score(pool, samples)
                Expect.equal scored.[0].Score 1.0 "path.py:name"
                Expect.stringContains (msg (fun () -> RewardFunction.Load(Path.Combine(dir, "absent.py")) |> ignore)) "absent.py: no such file" "missing file")
    ]

/// Labelled comparisons: a failure prints both sides and where they differ.
module SimKO.Tests.Checks

open Expecto
open TorchSharp
open SimKO.Math.Tensors

/// The repository root (the folder holding SimKO.sln above the test binary) and its README, when found.
let readme () =
    SimKO.Data.Math.Datasets.FindRepoRoot System.AppContext.BaseDirectory
    |> Option.ofObj
    |> Option.map (fun root -> root, System.IO.File.ReadAllText(System.IO.Path.Combine(root, "README.md")))

let toArray (t: Tensor) : float[] =
    t.detach().to_type(torch.ScalarType.Float64).contiguous().data<float>().ToArray()

/// |a − b| ≤ atol + rtol·|b| elementwise, else fail naming the worst index and both values.
let allClose (what: string) (atol: float) (rtol: float) (expected: float[]) (actual: float[]) =
    Expect.equal actual.Length expected.Length (sprintf "%s: lengths differ" what)
    let mutable worst = -1
    let mutable worstExcess = 0.0
    for i in 0 .. expected.Length - 1 do
        let e, a = expected.[i], actual.[i]
        let excess = abs (a - e) - (atol + rtol * abs e)
        if System.Double.IsNaN a || System.Double.IsNaN e || excess > worstExcess then
            if worst < 0 || excess > worstExcess || System.Double.IsNaN excess then
                worst <- i
                worstExcess <- (if System.Double.IsNaN excess then infinity else excess)
    if worst >= 0 then
        failtestf "%s: at index %d expected %.12g but got %.12g (tolerance %g + %g·|expected|)"
            what worst expected.[worst] actual.[worst] atol rtol

let tensorsClose what atol rtol (expected: Tensor) (actual: Tensor) =
    allClose what atol rtol (toArray expected) (toArray actual)

/// The steps of a run's metrics.jsonl (`out`/metrics.jsonl), one JSON object a line.
let metricsOf (out: string) =
    [ for line in System.IO.File.ReadLines(System.IO.Path.Combine(out, "metrics.jsonl")) -> System.Text.Json.Nodes.JsonNode.Parse(line).AsObject() ]

/// Two runs' metrics agree step by step on every value but the timings: exactly, except the
/// sampler's log-prob mismatch (a difference of two float sums, compared within 1e-5).
let expectSameMetrics (expected: System.Text.Json.Nodes.JsonObject list) (actual: System.Text.Json.Nodes.JsonObject list) =
    let timing = set [ "time_s"; "rollout_tokens_per_s"; "update_tokens_per_s"; "peak_rss_mb"; "rollout_s_min"; "rollout_s_max"; "update_s_min"; "update_s_max" ]
    Expect.equal actual.Length expected.Length "as many steps"
    for ra, rb in List.zip expected actual do
        for kv in ra do
            if not (timing.Contains kv.Key) then
                let x, y = kv.Value.GetValue<float>(), rb.[kv.Key].GetValue<float>()
                if kv.Key = "sampler_logprob_mismatch" then Expect.floatClose { absolute = 1e-5; relative = 1e-4 } y x kv.Key
                else Expect.equal y x (sprintf "step %d: %s" (ra.["step"].GetValue<int>()) kv.Key)

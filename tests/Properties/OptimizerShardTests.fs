/// The sharded optimizer state of `shard_optimizer` (issue 21 §3; src/SimKO.Host/Training/OptimizerShard.cs) in one
/// process: the ranks' slices cover every parameter element exactly once, and with one rank the sharded optimizer
/// (reduce-scatter, norm from the shard, the update on the shard's pieces, all-gather) equals the replicated one bit
/// for bit, in float32 (the parameters are the masters) and with offload (float32 masters in host memory), with and
/// without clipping. Several ranks: CollectiveTests, under mpirun.
module SimKO.Tests.OptimizerShardTests

open Expecto
open FsCheck
open TorchSharp
open SimKO.Host.Model
open SimKO.Host.Training
open SimKO.Host.Collective
open SimKO.Tests.Generators

/// Rank `rank` of `size` ranks, for layouts only: no collective may run.
let private layoutRanks (rank: int) (size: int) =
    { new ICollective with
        member _.Backend = "layout"
        member _.Rank = rank
        member _.WorldSize = size
        member _.LocalRank = rank
        member _.Step with get () = 0L and set (_: int64) = ()
        member _.AllReduce(_, _) = failwith "no collective in a layout test"
        member _.ReduceScatter(_, _) = failwith "no collective in a layout test"
        member _.AllGather(_) = failwith "no collective in a layout test"
        member _.Broadcast(_, _) = failwith "no collective in a layout test"
        member _.Barrier() = failwith "no collective in a layout test"
        member _.Dispose() = () }

let private tinyModel (seed: int64) =
    let m = new CausalLM(ModelConfig("qwen2", 20, 32, 64, 2, 4, 2, 1e-6, 10000.0, false, true, 64))
    m.InitWeights(seed)
    m

let private named (m: CausalLM) =
    m.NamedParameters() |> Seq.map (fun struct (n, p) -> struct (n, p :> torch.Tensor)) |> Array.ofSeq

/// Three updates of two accumulated micro-batches of a next-token loss on fixed data: the clip norms.
let private adamSteps (m: CausalLM) (opt: AdamW) (clip: float) = MixedPrecisionTests.adamSteps m opt 3 clip

let tests =
    testList "sharded optimizer" [
        testPropertyWithConfig (config 200) "the ranks' slices cover every parameter element exactly once, in order, the last rank's ending in padding"
            (fun (sizes: NonEmptyArray<PositiveInt>) (ranks: PositiveInt) ->
                use _ = torch.NewDisposeScope()
                let numels = sizes.Get |> Array.map (fun s -> 1 + s.Get % 40) |> Array.truncate 12
                let n = 1 + ranks.Get % 5
                let parameters = numels |> Array.mapi (fun i k -> struct (sprintf "p%d" i, torch.zeros(int64 k)))
                let total = Array.sum numels
                let k = (total + n - 1) / n
                // plain reference: element e of the flat vector belongs to parameter i at index e − start(i) and to rank e / k
                let owner = Array.zeroCreate total
                let starts = Array.scan (+) 0 numels
                for r in 0 .. n - 1 do
                    let shard = OptimizerShard(parameters, layoutRanks r n, false)
                    Expect.equal shard.Size (int64 k) "K = ⌈P/N⌉"
                    Expect.equal shard.Total (int64 total) "P"
                    let mutable offset = 0L
                    for piece in shard.Owned do
                        Expect.equal piece.Offset offset "pieces are consecutive within the slice"
                        for j in 0L .. piece.Length - 1L do
                            let flat = starts[piece.Param] + int (piece.At + j)
                            Expect.equal (flat / k) r (sprintf "element %d lies in rank %d's slice" flat r)
                            Expect.equal (flat - r * k) (int (piece.Offset + j)) "at its offset in the slice"
                            owner[flat] <- owner[flat] + 1
                        offset <- offset + piece.Length
                    let expected = max 0 (min k (total - r * k))
                    Expect.equal offset (int64 expected) (sprintf "rank %d owns min(K, P − r·K) elements, the rest is padding" r)
                Expect.isTrue (Array.forall ((=) 1) owner) "every element has exactly one owner")

        testCase "with one rank the sharded optimizer equals the replicated one bit for bit (float32, offload; with and without clipping)" <| fun () ->
            use _ = torch.NewDisposeScope()
            for offload in [ false; true ] do
                for clip in [ 1e9; 0.05 ] do
                    use plain = tinyModel 3L
                    use sharded = tinyModel 3L
                    let a = AdamW(named plain, 0.9, 0.99, 1e-8, 0.01, offload)
                    use one = new SingleProcess()
                    let b = AdamW(named sharded, 0.9, 0.99, 1e-8, 0.01, offload, shardOver = one)
                    Expect.isNotNull b.Shard "sharded"
                    Expect.equal b.HasMasters offload "masters only with offload (float32 parameters are their own)"
                    let what = sprintf "offload %b, clip %g" offload clip
                    let normsA, normsB = adamSteps plain a clip, adamSteps sharded b clip
                    Expect.sequenceEqual normsB normsA (sprintf "the same gradient norms (%s)" what)
                    if clip < 1.0 then Expect.isTrue (List.forall (fun x -> x > clip) normsA) "clipping was active"
                    for struct (n, p), struct (_, q) in Seq.zip (plain.NamedParameters()) (sharded.NamedParameters()) do
                        Expect.isTrue (p.Equals q) (sprintf "%s: the same weights (%s)" n what)
                    let masters = b.MasterWeightsOn(0)
                    for KeyValue (n, w) in a.MasterWeights() do
                        Expect.isTrue (w.cpu().Equals(masters[n].cpu())) (sprintf "%s: the same master weights (%s)" n what)
                    let state = b.StateOn(0)
                    for KeyValue (n, t) in a.State() do
                        Expect.isTrue (t.cpu().Equals(state[n].cpu())) (sprintf "%s: the same optimizer state (%s)" n what)

        testCase "a sharded optimizer restored from a replicated one's state continues bit for bit" <| fun () ->
            use _ = torch.NewDisposeScope()
            use one = new SingleProcess()
            use m1 = tinyModel 5L
            let o1 = AdamW(named m1, 0.9, 0.99, 1e-8, 0.01, true)
            adamSteps m1 o1 0.05 |> ignore
            use m2 = tinyModel 5L
            let o2 = AdamW(named m2, 0.9, 0.99, 1e-8, 0.01, true)
            adamSteps m2 o2 0.05 |> ignore
            // m3 starts elsewhere and takes o2's masters and state, sharded
            use m3 = tinyModel 6L
            let o3 = AdamW(named m3, 0.9, 0.99, 1e-8, 0.01, true, shardOver = one)
            o3.LoadMasterWeights(o2.MasterWeights(), "test")
            o3.Load(o2.State(), "test")
            adamSteps m1 o1 0.05 |> ignore
            adamSteps m3 o3 0.05 |> ignore
            for struct (n, p), struct (_, q) in Seq.zip (m1.NamedParameters()) (m3.NamedParameters()) do
                Expect.isTrue (p.Equals q) (sprintf "%s: 6 replicated updates = 3 + restore into a shard + 3" n)

        testCase "the sharded optimizer's whole state is gathered, not read from one rank's slice" <| fun () ->
            use _ = torch.NewDisposeScope()
            use one = new SingleProcess()
            use m = tinyModel 7L
            let o = AdamW(named m, 0.9, 0.99, 1e-8, 0.01, true, shardOver = one)
            Expect.throws (fun () -> o.MasterWeights() |> ignore) "the masters live in slices: MasterWeightsOn gathers them"
            Expect.throws (fun () -> o.State() |> ignore) "the moments live in slices: StateOn gathers them"
            Expect.equal o.StateBytes (4L * 4L * o.Shard.Total) "masters, sums, m and v of every element (one rank, float32)"
    ]

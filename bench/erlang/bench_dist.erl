%% bench_dist - distribution on the BEAM, the counterpart of krbench
%% dist_pingpong and dist_stream (bench/bench_dist.c): a small message's
%% round trip between two nodes, and one-way streaming on one connection.
%%
%% This BEAM becomes a node (krbench_beamPID@127.0.0.1, a cookie of its own;
%% `epmd -daemon` first, as erl -name would) and starts the other node as
%% an OS process on the same loopback, under `timeout` (--timeout and a
%% little more), and kills it at the end:
%%   --peer beam   erl running peer/0 below: `echo` and `sink`, which also
%%                 halts when it loses its connection to us;
%%   --peer krill  build/krnode (--krnode PATH), whose `echo` and `sink` do
%%                 the same (examples/dist/krnode.c).
%%
%% dist_pingpong: {self(), {1, <<Round:64/little>>}} to echo, which sends
%% {1, <<Round:64/little>>} back: the same term krbench sends a BEAM peer.
%% To a BEAM peer the rounds go to echo's pid (asked for once by rpc), as an
%% Erlang program would send them; krnode answers no rpc, so to it they go
%% to {echo, Node}. Each round is timed with erlang:monotonic_time into
%% krbench_hist, after a warm-up.
%%
%% dist_stream: --msgs messages {2, Binary} of --size bytes to sink, as fast
%% as `!` takes them (the BEAM suspends a sender past the connection's
%% dist_buf_busy_limit), then the end message: {self(), {16#e0f, _}} to a
%% BEAM sink, {16#e0f, _} to krnode's (which sees the sender); the sink
%% answers {16#e0f, <<Count:64/little>>}, and Count must be --msgs. The time
%% runs from the first send to the answer. A warm-up stream goes first.
-module(bench_dist).
-export([pingpong/1, stream/1, peer/0]).

-define(PING, 1).
-define(DATA, 2).
-define(END, 16#e0f).
-define(READY_MS, 30000).
-define(ANSWER_MS, 20000).

pingpong(Args) -> run("dist_pingpong", Args).
stream(Args) -> run("dist_stream", Args).

run(Bench, Args) ->
    Spec = [{"--peer", peer, string}, {"--rounds", rounds, 20000}, {"--msgs", msgs, 1000000},
            {"--size", size, 64}, {"--krnode", krnode, string}],
    case krbench:opts(Bench, Args, Spec) of
        {error, Rc} -> Rc;
        {ok, #{peer := P}} when P =/= undefined, P =/= "beam", P =/= "krill" ->
            krbench:note("krbench ~s: --peer krill or beam, not '~s'~n", [Bench, P]),
            2;
        {ok, O} ->
            Peer = case maps:get(peer, O) of "krill" -> krill; _ -> beam end,
            krbench:run_root(Bench, fun() -> root(Bench, Peer, O) end)
    end.

root(Bench, Peer, O) ->
    OsPid = os:getpid(),
    Self = list_to_atom("krbench_beam" ++ OsPid ++ "@127.0.0.1"),
    PeerNode = list_to_atom("krpeer_beam" ++ OsPid ++ "@127.0.0.1"),
    Cookie = list_to_atom("krbench_" ++ OsPid ++ "_" ++ integer_to_list(erlang:unique_integer([positive]))),
    _ = os:cmd("epmd -daemon"),
    case net_kernel:start([Self, longnames]) of
        {ok, _} -> ok;
        {error, Why} -> error({net_kernel_start, Why})
    end,
    erlang:set_cookie(node(), Cookie),
    Port = start_peer(Peer, PeerNode, Cookie, O),
    try
        case wait_ready(Port, erlang:monotonic_time(millisecond) + ?READY_MS, []) of
            ok -> ok;
            {error, Text} -> error({peer_not_ready, Text})
        end,
        krbench:note("~s: ~s against ~s (peer=~s)~n", [Bench, node(), PeerNode, Peer]),
        case Bench of
            "dist_pingpong" -> pingpong(Peer, PeerNode, O);
            "dist_stream" -> stream(Peer, PeerNode, O)
        end
    after
        kill_peer(Port)
    end.

%% ---- the peer ----

start_peer(Peer, PeerNode, Cookie, #{timeout := T} = O) ->
    Guard = integer_to_list(T + 30),
    Cmd = case Peer of
              beam ->
                  Dir = filename:dirname(code:which(?MODULE)),
                  [os:find_executable("erl"), "-noshell", "-name", atom_to_list(PeerNode),
                   "-setcookie", atom_to_list(Cookie), "-pa", Dir, "-s", "bench_dist", "peer",
                   "-extra", atom_to_list(node())];
              krill ->
                  K = case maps:get(krnode, O) of
                          undefined -> filename:join(filename:dirname(filename:dirname(
                                                       code:which(?MODULE))), "krnode");
                          Path -> Path
                      end,
                  [K, "--name", atom_to_list(PeerNode), "--cookie", atom_to_list(Cookie)]
          end,
    open_port({spawn_executable, os:find_executable("timeout")},
              [{args, ["--foreground", "-s", "KILL", Guard | Cmd]}, {line, 1024},
               stderr_to_stdout, exit_status, binary]).

wait_ready(Port, End, Seen) ->
    Left = max(0, End - erlang:monotonic_time(millisecond)),
    receive
        {Port, {data, {_, Line}}} ->
            case binary:match(Line, <<"ready">>) of
                nomatch -> wait_ready(Port, End, [Line | Seen]);
                _ -> ok
            end;
        {Port, {exit_status, S}} ->
            {error, io_lib:format("it ended (status ~b): ~s", [S, lists:reverse(Seen)])}
    after Left ->
            {error, io_lib:format("no ready line in ~b ms: ~s", [?READY_MS, lists:reverse(Seen)])}
    end.

%% timeout --foreground turns our SIGTERM into the peer's SIGKILL.
kill_peer(Port) ->
    case erlang:port_info(Port, os_pid) of
        {os_pid, P} ->
            _ = os:cmd("kill -TERM " ++ integer_to_list(P)),
            receive {Port, {exit_status, _}} -> ok after 5000 -> ok end;
        undefined ->
            ok
    end,
    catch port_close(Port),
    ok.

%% The BEAM peer (erl ... -s bench_dist peer -extra OriginNode): echo and
%% sink, then "ready"; it halts when the origin goes.
peer() ->
    [Origin] = init:get_plain_arguments(),
    O = list_to_atom(Origin),
    spawn(fun() ->
                  register(echo, spawn(fun echo/0)),
                  register(sink, spawn(fun() -> sink(0) end)),
                  true = net_kernel:connect_node(O),
                  monitor_node(O, true),
                  io:format("bench_dist peer ~s ready~n", [node()]),
                  receive {nodedown, O} -> erlang:halt(0) end
          end).

echo() ->
    receive
        {Pid, Term} when is_pid(Pid) -> Pid ! Term;
        _ -> ok
    end,
    echo().

sink(N) ->
    receive
        {Pid, {?END, _}} when is_pid(Pid) ->
            Pid ! {?END, <<N:64/little>>},
            sink(0);
        _ ->
            sink(N + 1)
    end.

%% ---- dist_pingpong ----

pingpong(Peer, PeerNode, #{rounds := Rounds, schedulers := S}) ->
    Echo = case Peer of
               beam -> rpc:call(PeerNode, erlang, whereis, [echo]);
               krill -> {echo, PeerNode}
           end,
    Warmup = max(1, min(Rounds div 10, 10000)),
    rounds(Echo, 0, Warmup + Rounds, Warmup, krbench_hist:new(), 0),
    receive {done, H, WallNs} -> report_pingpong(Peer, S, Rounds, H, WallNs) end.

rounds(_, I, Total, _, H, Wall0) when I =:= Total ->
    self() ! {done, H, krbench:now_ns() - Wall0};
rounds(Echo, I, Total, Warmup, H, Wall0) ->
    T0 = erlang:monotonic_time(nanosecond),
    Echo ! {self(), {?PING, <<I:64/little>>}},
    receive
        {?PING, <<I:64/little>>} -> ok
    after ?ANSWER_MS ->
            error({no_answer, I})
    end,
    T1 = erlang:monotonic_time(nanosecond),
    H1 = if I >= Warmup -> krbench_hist:record(H, T1 - T0); true -> H end,
    W1 = if I =:= Warmup -> T0; true -> Wall0 end,
    rounds(Echo, I + 1, Total, Warmup, H1, W1).

report_pingpong(Peer, S, Rounds, H, WallNs) ->
    P = fun(Pc) -> krbench_hist:percentile(H, Pc) end,
    Mean = krbench_hist:mean(H),
    krbench:result("dist_pingpong",
                   [{peer, Peer}, {schedulers, S}, {rounds, Rounds}, {p50_ns, P(50)}, {p99_ns, P(99)},
                    {p999_ns, P(99.9)}, {max_ns, P(100)}, {mean_ns, {float, 1, Mean}},
                    {wall_ns_per_rtt, {float, 1, WallNs / Rounds}}]),
    io:format("dist_pingpong (beam to ~s): round trip p50 ~.1f us, p99 ~.1f us, mean ~.1f us "
              "over ~b rounds~n", [Peer, P(50) / 1000, P(99) / 1000, Mean / 1000, Rounds]),
    0.

%% ---- dist_stream ----

stream(Peer, PeerNode, #{msgs := Msgs, size := Size, schedulers := S}) ->
    Sink = case Peer of
               beam -> rpc:call(PeerNode, erlang, whereis, [sink]);
               krill -> {sink, PeerNode}
           end,
    Bin = binary:copy(<<16#5a>>, Size),
    ok = stream_once(Peer, Sink, Bin, max(1, min(Msgs div 10, 10000))),
    T0 = krbench:now_ns(),
    ok = stream_once(Peer, Sink, Bin, Msgs),
    Secs = (krbench:now_ns() - T0) / 1.0e9,
    Mps = Msgs / Secs,
    MBps = Msgs * Size / Secs / 1.0e6,
    krbench:result("dist_stream",
                   [{peer, Peer}, {schedulers, S}, {size, Size}, {msgs, Msgs}, {msgs_per_s, round(Mps)},
                    {'MB_per_s', {float, 1, MBps}}, {secs, {float, 3, Secs}}]),
    io:format("dist_stream (beam to ~s): ~b messages of ~b bytes in ~.3f s: ~b messages/s, "
              "~.1f MB/s~n", [Peer, Msgs, Size, Secs, round(Mps), MBps]),
    0.

stream_once(Peer, Sink, Bin, N) ->
    send_n(Sink, Bin, N),
    End = {?END, <<0:64>>},
    Sink ! case Peer of beam -> {self(), End}; krill -> End end,
    receive
        {?END, <<N:64/little>>} -> ok;
        {?END, <<Other:64/little>>} -> error({sink_counted, Other, N})
    after ?ANSWER_MS ->
            error(no_answer_from_sink)
    end.

send_n(_, _, 0) -> ok;
send_n(Sink, Bin, N) ->
    Sink ! {?DATA, Bin},
    send_n(Sink, Bin, N - 1).

%% bench_overload - K fast senders, one slow receiver, on the BEAM: the
%% counterpart of bench/bench_overload.c.
%%
%% Each sender sends M messages (an integer) as fast as it can; the receiver
%% does --work W iterations of an empty loop per message and samples its own
%% message_queue_len every 64 messages. It monitors the senders and ends
%% when every sender has ended and its queue is empty. The BEAM has no
%% mailbox limit (max_heap_size counts the queue only on_heap, and kills at
%% a garbage collection), so there is no --limit here: this is what krill's
%% sender penalty is compared against. The receiver's queue is off_heap, as
%% OTP advises for a process that gets many messages.
%%
%%   RESULT bench=overload impl=beam limit=0 policy=none senders=K msgs=M
%%     peak_queue=Q sent_per_s=X received=R dead_letters=0 secs=S end=normal
-module(bench_overload).
-export([run/1]).

run(Args) ->
    Spec = [{"--senders", senders, 8}, {"--msgs", msgs, 200000}, {"--work", work, 200}],
    case krbench:opts("overload", Args, Spec) of
        {error, Rc} -> Rc;
        {ok, #{senders := K, msgs := M, work := W, schedulers := S}} ->
            krbench:run_root("overload", fun() -> root(K, M, W, S) end)
    end.

root(K, M, W, Scheds) ->
    process_flag(message_queue_data, off_heap),
    Me = self(),
    T0 = krbench:now_ns(),
    [spawn_monitor(fun() -> send(Me, M) end) || _ <- lists:seq(1, K)],
    {Received, Peak, TSent} = loop(K, W, 0, 0, undefined),
    Secs = (TSent - T0) / 1.0e9,
    krbench:result("overload", [{schedulers, Scheds}, {limit, 0}, {policy, none}, {senders, K},
                                {msgs, M}, {peak_queue, Peak},
                                {sent_per_s, round(K * M / Secs)}, {received, Received},
                                {dead_letters, 0}, {secs, {float, 3, Secs}}, {'end', normal}]),
    0.

send(_To, 0) -> ok;
send(To, N) -> To ! N, send(To, N - 1).

%% Downs left, work, received, peak queue, time the last sender ended.
loop(0, _W, Rcvd, Peak, TSent) ->
    case process_info(self(), message_queue_len) of
        {message_queue_len, 0} -> {Rcvd, Peak, TSent};
        _ -> drain(0, _W, Rcvd, Peak, TSent)
    end;
loop(Downs, W, Rcvd, Peak, TSent) ->
    drain(Downs, W, Rcvd, Peak, TSent).

drain(Downs, W, Rcvd, Peak, TSent) ->
    receive
        {'DOWN', _, process, _, _} ->
            T = if Downs =:= 1 -> krbench:now_ns(); true -> TSent end,
            loop(Downs - 1, W, Rcvd, Peak, T);
        N when is_integer(N) ->
            spin(W),
            R = Rcvd + 1,
            P = if R band 63 =:= 0 ->
                        {message_queue_len, L} = process_info(self(), message_queue_len),
                        max(L, Peak);
                   true -> Peak
                end,
            loop(Downs, W, R, P, TSent)
    end.

spin(0) -> ok;
spin(N) -> spin(N - 1).

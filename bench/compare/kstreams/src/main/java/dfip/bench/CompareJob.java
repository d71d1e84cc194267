package dfip.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.time.Duration;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The bench/compare job in Kafka Streams (see bench/compare/README.md).
 *
 * <p>Scores update a USCC-keyed table (a state store in the transactions' sub-topology: the
 * scores topic is co-partitioned with the transactions, and a DSL table() would need the key to
 * be the USCC, while re-keying through a repartition topic would let a transaction overtake its
 * score). Each transaction is joined with its enterprise's latest score, and counted and summed
 * in fen per band in tumbling Beijing-day windows; the window results go to the output topic
 * as "count,fen" under the key "band|yyyy-mm-dd".
 *
 * <p>Arguments: bootstrap scoresTopic transactionsTopic outputTopic applicationId stateDir
 */
public final class CompareJob {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String STORE = "latest-score";
    static final long BEIJING_OFFSET_MS = 8L * 3600 * 1000;
    static final long DAY_MS = 24L * 3600 * 1000;

    private CompareJob() {}

    /** Band rule of docs/metrics.md (l0 < 20 <= l1 < 40 <= l2 < 60 <= l3 < 80 <= l4). */
    static String band(BigDecimal score) {
        if (score.compareTo(BigDecimal.valueOf(20)) < 0) return "l0";
        if (score.compareTo(BigDecimal.valueOf(40)) < 0) return "l1";
        if (score.compareTo(BigDecimal.valueOf(60)) < 0) return "l2";
        if (score.compareTo(BigDecimal.valueOf(80)) < 0) return "l3";
        return "l4";
    }

    static long micros(String isoTime) {
        var t = OffsetDateTime.parse(isoTime).toInstant();
        return t.getEpochSecond() * 1_000_000L + t.getNano() / 1000;
    }

    /** CNY amount to integer fen, half to even (schemas.money.to_fen at rate 1). */
    static long fen(String amount) {
        return new BigDecimal(amount).movePointRight(2).setScale(0, RoundingMode.HALF_EVEN)
                .longValueExact();
    }

    static final class JsonSerde implements Serde<JsonNode> {
        @Override
        public Serializer<JsonNode> serializer() {
            return (topic, node) -> {
                try {
                    return JSON.writeValueAsBytes(node);
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            };
        }

        @Override
        public Deserializer<JsonNode> deserializer() {
            return (topic, bytes) -> {
                try {
                    return JSON.readTree(bytes);
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            };
        }
    }

    /**
     * Event time: the transaction's occurred_at, the score's assessed_at, shifted by +8 h so
     * that the epoch-aligned day windows are Beijing calendar days.
     */
    public static final class EventTime implements TimestampExtractor {
        @Override
        public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
            JsonNode v = (JsonNode) record.value();
            JsonNode at = v.has("assessed_at") ? v.get("assessed_at") : v.get("occurred_at");
            return micros(at.asText()) / 1000 + BEIJING_OFFSET_MS;
        }
    }

    /** Keeps the newest assessment per USCC (by assessed_at; a tie: the one read last). */
    static final class ScoreUpdater implements Processor<String, JsonNode, Void, Void> {
        private KeyValueStore<String, String> store;

        @Override
        public void init(ProcessorContext<Void, Void> context) {
            store = context.getStateStore(STORE);
        }

        @Override
        public void process(Record<String, JsonNode> r) {
            JsonNode v = r.value();
            String uscc = v.get("enterprise_uscc").asText();
            long at = micros(v.get("assessed_at").asText());
            String current = store.get(uscc);
            if (current != null && Long.parseLong(current.substring(0, current.indexOf('|'))) > at) {
                return;
            }
            store.put(uscc, at + "|" + band(new BigDecimal(v.get("overall_score").asText())));
        }
    }

    /** Transaction -> "band|fen": the table lookup of the join. */
    static final class BandJoiner implements FixedKeyProcessor<String, JsonNode, String> {
        private KeyValueStore<String, String> store;
        private FixedKeyProcessorContext<String, String> context;

        @Override
        public void init(FixedKeyProcessorContext<String, String> context) {
            this.context = context;
            store = context.getStateStore(STORE);
        }

        @Override
        public void process(FixedKeyRecord<String, JsonNode> r) {
            JsonNode v = r.value();
            String score = store.get(v.get("enterprise_uscc").asText());
            String band = score == null ? "unscored" : score.substring(score.indexOf('|') + 1);
            context.forward(r.withValue(band + "|" + fen(v.get("amount").asText())));
        }
    }

    static String add(String agg, String bandFen) {
        int comma = agg.indexOf(',');
        long count = Long.parseLong(agg.substring(0, comma)) + 1;
        long fen = Long.parseLong(agg.substring(comma + 1))
                + Long.parseLong(bandFen.substring(bandFen.indexOf('|') + 1));
        return count + "," + fen;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], scores = args[1], transactions = args[2], output = args[3];
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, args[4]);
        p.put(StreamsConfig.STATE_DIR_CONFIG, args[5]);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.DEFAULT_TIMESTAMP_EXTRACTOR_CLASS_CONFIG, EventTime.class);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

        StreamsBuilder b = new StreamsBuilder();
        b.addStateStore(Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore(STORE), Serdes.String(), Serdes.String()));
        Serde<JsonNode> json = new JsonSerde();
        b.stream(scores, Consumed.with(Serdes.String(), json)).process(ScoreUpdater::new, STORE);
        b.stream(transactions, Consumed.with(Serdes.String(), json))
                .processValues(BandJoiner::new, STORE)
                .groupBy((k, v) -> v.substring(0, v.indexOf('|')),
                        Grouped.with(Serdes.String(), Serdes.String()))
                // a grace longer than the feed: every event is in its window (none is late)
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofDays(1), Duration.ofDays(30)))
                .aggregate(() -> "0,0", (band, v, agg) -> add(agg, v),
                        Materialized.<String, String, WindowStore<Bytes, byte[]>>with(
                                Serdes.String(), Serdes.String()))
                .toStream((w, v) -> w.key() + "|" + LocalDate.ofEpochDay(w.window().start() / DAY_MS))
                .to(output, Produced.with(Serdes.String(), Serdes.String()));

        KafkaStreams streams = new KafkaStreams(b.build(), p);
        CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(30));
            done.countDown();
        }));
        streams.setUncaughtExceptionHandler(e -> {
            e.printStackTrace();
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
                    .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();
        System.out.println("started");
        done.await();
    }
}

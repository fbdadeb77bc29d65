// The number of records in a topic (sum of its partitions' end offsets, log start 0), read
// with Kafka's own Java admin client: the independent reader of benches/load.sh.
// Usage: java -cp "$(scripts/kafka-fetch)/*" benches/TopicEnd.java BOOTSTRAP TOPIC
// Prints 0 when the topic does not exist.
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.TopicPartition;

public class TopicEnd {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        try (Admin admin = Admin.create(p)) {
            TopicDescription d;
            try {
                d = admin.describeTopics(java.util.List.of(args[1])).allTopicNames().get().get(args[1]);
            } catch (java.util.concurrent.ExecutionException e) {
                System.out.println(0);
                return;
            }
            Map<TopicPartition, OffsetSpec> want = new HashMap<>();
            d.partitions().forEach(i -> want.put(new TopicPartition(args[1], i.partition()), OffsetSpec.latest()));
            long sum = 0;
            for (var e : admin.listOffsets(want).all().get().values()) {
                sum += e.offset();
            }
            System.out.println(sum);
        }
    }
}
